"""API benchmark: listing 50 jobs of a team with 10,000, and creating a one-link job.

    .venv/bin/python bench/api.py [--jobs 10000] [--requests 300]

Starts gunicorn (2 processes x 4 threads, as `make run` does) on a fresh database holding one
team with N finished jobs and an API key, then measures, one client at a time:
- `GET /api/v1/jobs?limit=50` (the first page, and a page deep in the history by cursor;
  goal p95 < 30 ms);
- `POST /api/v1/jobs` with one new link and its own Idempotency-Key (goal p95 < 60 ms): the
  key's check, the rate limit, the idempotency row, admission, the hold and the job.
DATABASE_URL / REDIS_URL in the environment are used as given (the rate limit counts in Redis
when REDIS_URL is set, else in the database cache, as in production and local runs).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import free_port, wait_for_port  # noqa: E402


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="unmark-api-bench-"))
    port = free_port()
    os.environ.update(
        {
            "DJANGO_ENV": "local",
            "VAR_DIR": str(workdir),
            "LOG_LEVEL": "WARNING",
            "PORT": str(port),
            # The benchmark measures the work, not the limit that would refuse it.
            "API_RATE_PER_MINUTE": "1000000",
        }
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    api_key = seed(args.jobs, creates=args.requests)

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--no-control-socket",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=(workdir / "web.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=headers) as api:
            # The first requests warm both workers up (imports, connections): not measured.
            for _ in range(4):
                first = api.get("/jobs", params={"limit": 50}, timeout=60)
                check(first, 200)
            assert len(first.json()["data"]) == 50
            deep_cursor = walk_cursor(api, pages=100)
            print(
                f"{args.jobs:,} jobs in the team; gunicorn 2 processes x 4 threads; "
                f"{'PostgreSQL' if os.environ.get('DATABASE_URL') else 'SQLite'}, "
                f"{'Redis' if os.environ.get('REDIS_URL') else 'database'} cache"
            )
            measure(
                "list 50 jobs (first page)",
                args.requests,
                lambda _: check(api.get("/jobs", params={"limit": 50}), 200),
            )
            measure(
                "list 50 jobs (page 101, by cursor)",
                args.requests,
                lambda _: check(api.get("/jobs", params={"limit": 50, "cursor": deep_cursor}), 200),
            )
            measure(
                "create a one-link job",
                args.requests,
                lambda i: check(
                    api.post(
                        "/jobs",
                        json={"links": [f"https://sora.chatgpt.com/p/s_{(1 << 100) + i:032x}"]},
                        headers={"Idempotency-Key": f"bench-{i}"},
                    ),
                    201,
                ),
            )
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"data and log: {workdir}")


def seed(count: int, *, creates: int) -> str:
    """One team with `count` finished jobs and enough credits for the creates; returns a
    read-and-write API key of it."""
    from django.conf import settings
    from django.db import connection

    from apps.accounts.models import Membership, User
    from apps.api.keys import create_key
    from apps.billing import ledger
    from apps.billing.welcome import onboard_new_user
    from apps.jobs.models import Job, JobState

    # A new person and team each run: a shared DATABASE_URL may hold earlier runs.
    user = User.objects.create_user(f"bench-{uuid.uuid4().hex[:8]}@example.com", "bench-pw-123")
    team = onboard_new_user(user=user)
    ledger.grant(
        team=team,
        credits=(creates + 10) * settings.CREDITS_PER_VIDEO,
        key=f"bench:{team.pk}",
        memo="Bench",
    )
    states = [JobState.SUCCEEDED] * 8 + [JobState.FAILED, JobState.CANCELED]
    for start in range(0, count, 2000):
        Job.objects.bulk_create(
            Job(
                team=team,
                created_by=user,
                source_url=f"https://sora.chatgpt.com/p/s_{i:032x}",
                provider="kie",
                credits=settings.CREDITS_PER_VIDEO,
                state=states[i % len(states)],
                result_size=5_000_000,
            )
            for i in range(start, min(start + 2000, count))
        )
    with connection.cursor() as cursor:
        # Fresh statistics, as autovacuum keeps them for a table that grew gradually; right
        # after a bulk insert the planner would think the team has a handful of jobs.
        cursor.execute("ANALYZE")
    membership = Membership.objects.select_related("team", "user").get(user=user, team=team)
    _, raw_key = create_key(membership=membership, name="Bench", read_only=False)
    return raw_key


def walk_cursor(api: httpx.Client, *, pages: int) -> str:
    cursor = None
    for _ in range(pages):
        params = {"limit": "50"} | ({"cursor": cursor} if cursor else {})
        cursor = api.get("/jobs", params=params).json()["next_cursor"]
    assert cursor
    return cursor


def check(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise SystemExit(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}, expected {status}: {response.text[:300]}"
        )
    return response


def measure(label: str, total: int, call: Callable[[int], object]) -> None:
    timings = []
    for index in range(total):
        started = time.perf_counter()
        call(index)
        timings.append(time.perf_counter() - started)
    ordered = sorted(timings)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"{label}: p50 {statistics.median(ordered) * 1000:.1f} ms  p95 {p95 * 1000:.1f} ms  "
        f"({len(ordered)} requests, 1 client)"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    return parser.parse_args()


if __name__ == "__main__":
    main()
