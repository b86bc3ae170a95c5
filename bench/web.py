"""Web benchmark: the dashboard with 1,000 jobs in history, and its live-refresh endpoint.

    .venv/bin/python bench/web.py [--jobs 1000] [--requests 300] [--concurrency 8]

Starts gunicorn (2 processes x 4 threads, as `make run` does) on a fresh database holding one
team with N finished and in-flight jobs, signs a person in, then measures:
- the full dashboard page, one client at a time (target p95 < 50 ms);
- the live refresh when nothing changed, one client at a time (the 204 answer, p95 < 15 ms);
- both again with several clients at once, for requests per second.
DATABASE_URL / REDIS_URL in the environment are used as given.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import free_port, gunicorn_argv, wait_for_port  # noqa: E402


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="unmark-web-bench-"))
    port = free_port()
    os.environ.update(
        {"DJANGO_ENV": "local", "VAR_DIR": str(workdir), "LOG_LEVEL": "WARNING", "PORT": str(port)}
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    session_cookie, since, team_path = seed(args.jobs)

    server = subprocess.Popen(
        gunicorn_argv(port, workers=2, threads=4),
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=(workdir / "web.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        cookies = {"sessionid": session_cookie}
        dashboard = f"{base}{team_path}dashboard/"
        refresh = f"{base}{team_path}jobs/table/?since={since}"
        check(dashboard, refresh, cookies)
        print(f"{args.jobs} jobs in the team's history; gunicorn 2 processes x 4 threads")
        measure("dashboard, 1 client", dashboard, cookies, args.requests, 1, expect=200)
        measure(
            "live refresh (no change), 1 client", refresh, cookies, args.requests, 1, expect=204
        )
        measure(
            f"dashboard, {args.concurrency} clients",
            dashboard,
            cookies,
            args.requests,
            args.concurrency,
            expect=200,
        )
        measure(
            f"live refresh, {args.concurrency} clients",
            refresh,
            cookies,
            args.requests * 3,
            args.concurrency,
            expect=204,
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"data and log: {workdir}")


def seed(count: int) -> tuple[str, str, str]:
    """One team with `count` jobs in mixed states; returns a session cookie, the pulse and the
    team's address (`/t/<team>/`)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from apps.accounts.models import User
    from apps.billing.welcome import onboard_new_user
    from apps.jobs.models import Job, JobEvent, JobState

    user = User.objects.create_user("bench@example.com", "bench-password-123")
    team = onboard_new_user(user=user)
    now = timezone.now()
    states = [JobState.SUCCEEDED] * 8 + [JobState.FAILED, JobState.PROCESSING]
    jobs = Job.objects.bulk_create(
        Job(
            team=team,
            created_by=user,
            source_url=f"https://sora.chatgpt.com/p/s_{i:032x}",
            provider="kie",
            credits=settings.CREDITS_PER_VIDEO,
            state=states[i % len(states)],
            failure_message="Kie could not remove the watermark: example." if i % 10 == 8 else "",
            result_size=5_000_000,
            finished_at=now,
        )
        for i in range(count)
    )
    JobEvent.objects.bulk_create(
        JobEvent(job=job, from_state="", to_state=JobState.QUEUED) for job in jobs
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    fingerprint = Job.objects.filter(team=team).pulse().fingerprint
    return session.session_key, fingerprint, f"/t/{team.public_id}/"


def check(dashboard: str, refresh: str, cookies: dict[str, str]) -> None:
    # The first request also warms a worker up (imports, templates): slow on a busy machine.
    page = httpx.get(dashboard, cookies=cookies, timeout=60)
    if page.status_code != 200 or "Remove watermarks" not in page.text:
        raise SystemExit(
            f"the dashboard did not render for the signed-in person ({page.status_code})"
        )
    if httpx.get(refresh, cookies=cookies, timeout=60).status_code != 204:
        raise SystemExit("the live refresh did not answer 204 for an unchanged team")


def measure(
    label: str, url: str, cookies: dict[str, str], total: int, clients: int, expect: int
) -> None:
    def worker(count: int) -> list[float]:
        timings = []
        with httpx.Client(cookies=cookies) as client:
            client.get(url)  # connection and server warm-up, not measured
            for _ in range(count):
                started = time.perf_counter()
                response = client.get(url)
                timings.append(time.perf_counter() - started)
                if response.status_code != expect:
                    raise SystemExit(f"{url} answered {response.status_code}, expected {expect}")
        return timings

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        timings = [t for part in pool.map(worker, [total // clients] * clients) for t in part]
    wall = time.perf_counter() - started
    ordered = sorted(timings)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"{label}: p50 {statistics.median(ordered) * 1000:.1f} ms  p95 {p95 * 1000:.1f} ms  "
        f"{len(ordered) / wall:.0f} req/s  ({len(ordered)} requests)"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    return parser.parse_args()


if __name__ == "__main__":
    main()
