"""Pipeline benchmark: N jobs through a real worker cluster and the Kie simulator.

    .venv/bin/python bench/pipeline.py                 # 500 jobs, callbacks, Kie's 20/10 s limit
    .venv/bin/python bench/pipeline.py --create-limit 1000 --jobs 500
    .venv/bin/python bench/pipeline.py --no-callbacks  # polling only

It starts, in a fresh folder: the simulator (latency 1-3 s), gunicorn (to receive Kie's
callbacks), and one worker cluster; submits the jobs through the same service the dashboard
uses; waits until every job has ended; then prints throughput and the achieved send rate as a
share of the create limit, how long jobs waited beyond the simulator's own processing time,
lost jobs, and the ledger reconciliation. Any database or broker settings in the environment
(DATABASE_URL, REDIS_URL) are used as given.

Per job, from the simulator's own record of the task:
  waiting  = Kie task created - job created     (queue, worker pickup, create-rate limit)
  finishing = job succeeded   - Kie task done   (callback or poll, status check, download, capture)
  overhead = waiting + finishing                (everything beyond Kie's processing)
"""

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import free_port, gunicorn_argv, spawn, wait_for_line, wait_for_port  # noqa: E402


def main() -> None:
    args = parse_args()
    # Stopped with SIGTERM, it still stops what it started (the `finally` below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    workdir = Path(tempfile.mkdtemp(prefix="unmark-bench-"))
    sim_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "local",
        "VAR_DIR": str(workdir),
        "KIE_SIMULATOR_PORT": str(sim_port),
        "KIE_CREATE_LIMIT": str(args.create_limit),
        "Q_WORKERS": str(args.workers),
        "PORT": str(web_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}" if args.callbacks else "",
        "LOG_LEVEL": "INFO",
    }
    env.pop("KIE_API_KEY", None)
    os.environ.update(env)
    if not args.callbacks:
        os.environ.pop("PUBLIC_BASE_URL")

    import django

    django.setup()
    # The processes log to their files; this one prints only the figures.
    logging.getLogger().setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)

    manage = [sys.executable, str(ROOT / "manage.py")]
    logs = workdir / "logs"
    logs.mkdir()
    processes = [
        spawn(
            "simulator",
            [*manage, "kie_simulator", "--port", str(sim_port), "--latency",
             str(args.latency[0]), str(args.latency[1]), "--rate-limit", str(args.create_limit)],
            env, logs,
        ),
        spawn("worker", [*manage, "worker"], env, logs),
    ]  # fmt: skip
    if args.callbacks:
        processes.append(
            spawn(
                "web",
                gunicorn_argv(web_port, workers=2, threads=8),
                env,
                logs,
            )
        )
    try:
        wait_for_port(sim_port)
        if args.callbacks:
            wait_for_port(web_port)
        wait_for_line(logs / "worker.log", "running.")
        run(args, settings.KIE_BASE_URL, settings.KIE_API_KEY)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    print(f"logs and data: {workdir}")


def run(args: argparse.Namespace, kie_url: str, kie_key: str) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    from apps.accounts.models import Membership, User
    from apps.billing import ledger
    from apps.billing.welcome import onboard_new_user
    from apps.jobs import submission
    from apps.jobs.models import Job, JobEvent, JobState

    user = User.objects.create_user(f"bench-{time.time_ns()}@example.com", "x")
    team = onboard_new_user(user=user)
    ledger.grant(team=team, credits=args.jobs * 10, key=f"bench:{team.pk}", memo="benchmark")
    membership = Membership.objects.select_related("team", "user").get(user=user, team=team)
    links = [f"https://sora.chatgpt.com/p/s_{i:032x}" for i in range(1, args.jobs + 1)]

    started = time.monotonic()
    jobs: list[Job] = []
    for first in range(0, len(links), 50):  # the dashboard takes 50 links at a time
        jobs += submission.submit_jobs(membership=membership, links=links[first : first + 50])
    print(f"submitted {len(jobs)} jobs in {time.monotonic() - started:.1f} s")

    ids = [job.pk for job in jobs]
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        remaining = Job.objects.filter(pk__in=ids).in_flight().count()
        print(f"\r{len(ids) - remaining}/{len(ids)} done ", end="", flush=True)
        if not remaining:
            break
        time.sleep(1)
    wall = time.monotonic() - started
    print()

    finished = list(Job.objects.filter(pk__in=ids))
    lost = [job for job in finished if job.is_in_flight]
    succeeded = [job for job in finished if job.state == JobState.SUCCEEDED]
    failed = [job for job in finished if job.state == JobState.FAILED]
    records = task_records(kie_url, kie_key, [job.task_id for job in succeeded])
    saving_started = dict(
        JobEvent.objects.filter(job__in=succeeded, to_state=JobState.DOWNLOADING).values_list(
            "job_id", "created_at"
        )
    )
    waiting, finishing, noticing, saving, processing = [], [], [], [], []
    for job in succeeded:
        record = records[job.task_id]
        kie_created, kie_done = record["createTime"] / 1000, record["completeTime"] / 1000
        assert job.finished_at is not None
        waiting.append(kie_created - job.created_at.timestamp())
        finishing.append(job.finished_at.timestamp() - kie_done)
        noticing.append(saving_started[job.pk].timestamp() - kie_done)
        saving.append((job.finished_at - saving_started[job.pk]).total_seconds())
        processing.append(kie_done - kie_created)
    overhead = [w + f for w, f in zip(waiting, finishing, strict=True)]

    out = StringIO()
    try:
        call_command("reconcile", stdout=out, stderr=out)
        reconcile = "clean"
    except SystemExit as exc:
        reconcile = f"DRIFT (exit {exc.code})"
    except Exception as exc:
        reconcile = f"DRIFT ({exc})"
    wallet = ledger.open_wallet(team)

    print(
        f"jobs: {len(jobs)}  succeeded: {len(succeeded)}  failed: {len(failed)}  lost: {len(lost)}"
    )
    low, high = args.latency
    print(
        f"callbacks: {'on' if args.callbacks else 'off (polling)'}  workers: {args.workers}  "
        f"create limit: {args.create_limit}/10 s  simulator latency: {low}-{high} s"
    )
    print(f"wall time: {wall:.1f} s  throughput: {len(succeeded) / wall:.2f} jobs/s")
    limit_rate = args.create_limit / 10
    created = sorted(record["createTime"] / 1000 for record in records.values())
    if len(created) > args.create_limit:
        # Past the first window's burst, creates can go no faster than the limit's rate.
        sent_rate = (len(created) - args.create_limit) / (created[-1] - created[0])
        print(
            f"send rate: {sent_rate:.2f} creates/s = {sent_rate / limit_rate:.3f} of the "
            f"{args.create_limit}-per-10-s limit (after the first {args.create_limit})"
        )
    print(f"throughput share of the limit: {len(succeeded) / wall / limit_rate:.3f}")
    if args.callbacks:
        outcomes = callback_outcomes(kie_url)
        print("callbacks: " + ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())))
    report("Kie processing (simulator)", processing)
    report("waiting before Kie", waiting)
    report("finishing after Kie", finishing)
    report("  of which noticing Kie is done", noticing)
    report("  of which saving the video", saving)
    report("overhead (total - processing)", overhead)
    print(f"credits: balance {wallet.balance}, held {wallet.held} "
          f"(expected balance {args.jobs * 10 - len(succeeded) * 10 + 30}, held 0)")  # fmt: skip
    print(f"reconcile: {reconcile}")
    print(out.getvalue().strip())
    print(f"measured at {timezone.now():%Y-%m-%d %H:%M} UTC")


def report(label: str, values: list[float]) -> None:
    if not values:
        print(f"{label}: no data")
        return
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(
        f"{label}: p50 {statistics.median(ordered):.3f} s  p95 {p95:.3f} s  max {ordered[-1]:.3f} s"
    )


def task_records(kie_url: str, kie_key: str, task_ids: list[str]) -> dict[str, dict]:
    with httpx.Client(base_url=kie_url, headers={"Authorization": f"Bearer {kie_key}"}) as client:
        return {
            task_id: client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()[
                "data"
            ]
            for task_id in task_ids
        }


def callback_outcomes(kie_url: str) -> dict[str, int]:
    tasks = httpx.get(f"{kie_url}/__sim__/tasks").json()["tasks"]
    outcomes: dict[str, int] = {}
    for task in tasks:
        what = (task["callback"] or "not sent").split(":")[0]
        outcomes[what] = outcomes.get(what, 0) + 1
    return outcomes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4, help="worker processes of the cluster")
    parser.add_argument(
        "--latency", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX")
    )
    parser.add_argument("--create-limit", type=int, default=20, help="Kie creates per 10 s")
    parser.add_argument("--no-callbacks", dest="callbacks", action="store_false")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for all jobs")
    return parser.parse_args()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    main()
