"""SWC pool benchmark: N file jobs over 3 SWC simulators, through a real worker cluster.

    .venv/bin/python bench/pool.py                    # 200 jobs, 3 s per video
    .venv/bin/python bench/pool.py --jobs 60 --seconds 2

Two runs, on the same processes, in a fresh folder (DATABASE_URL and REDIS_URL are used as
given in the environment):

1. steady: every server up. Each server runs one video at a time, so the best possible
   makespan is N·T/3; the ratio says how close the pool's dispatch comes to it.
2. drill: one server is killed (SIGKILL) when 30 % of the jobs are done and started again on
   the same port at 60 %. Its queue is lost, so its videos are sent elsewhere. The ideal is
   then the makespan of N·T server-seconds of work on the capacity that was really there
   (3 servers, then 2, then 3): every job must still succeed and be charged exactly once.

Makespan runs from the submission of the first job to the end of the last one.
"""

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import free_port, wait_for_line, wait_for_port  # noqa: E402

SERVERS = 3


@dataclass
class Simulator:
    port: int
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        wait_for_port(self.port)

    def kill(self) -> None:
        """Like the GPU machine losing power: no goodbye, everything in memory gone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="unmark-pool-bench-"))
    ports = [free_port() for _ in range(SERVERS)]
    env = {
        **os.environ,
        "DJANGO_ENV": "local",
        "VAR_DIR": str(workdir),
        "SWC_SERVERS": ",".join(f"http://127.0.0.1:{port}" for port in ports),
        "Q_WORKERS": str(args.workers),
        "PUBLIC_BASE_URL": "",
        "LOG_LEVEL": "INFO",
    }
    os.environ.update(env)

    import django

    django.setup()
    logging.getLogger().setLevel(logging.WARNING)  # the processes log to files; this prints figures
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)

    manage = [sys.executable, str(ROOT / "manage.py")]
    logs = workdir / "logs"
    logs.mkdir()
    simulators = [
        Simulator(
            port,
            [
                *manage,
                "swc_simulator",
                "--port",
                str(port),
                "--seconds-per-video",
                str(args.seconds),
            ],
            env,
            logs / f"swc-{port}.log",
        )
        for port in ports
    ]
    for simulator in simulators:
        simulator.start()
    worker_log = logs / "worker.log"
    worker = subprocess.Popen(
        [*manage, "worker"],
        env=env,
        stdout=worker_log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        wait_for_line(worker_log, "running.")
        clip = make_sample(workdir)
        # Each worker process imports and connects on its first task: not what is measured.
        run(args, clip, "warm-up", count=2 * SERVERS)
        print(f"{args.jobs} file jobs, {SERVERS} SWC simulators, {args.seconds} s per video, "
              f"{args.workers} worker processes")  # fmt: skip
        steady = run(args, clip, "steady", count=args.jobs)
        ideal = args.jobs * args.seconds / SERVERS
        print(f"steady: makespan {steady.makespan:.1f} s, ideal {ideal:.1f} s, "
              f"makespan ÷ ideal = {steady.makespan / ideal:.3f} (target ≤ 1.05)")  # fmt: skip

        drill = run(args, clip, "drill", simulators[0], count=args.jobs)
        assert drill.killed_at is not None
        assert drill.restarted_at is not None
        ideal = ideal_with_outage(args.jobs * args.seconds, drill.killed_at, drill.restarted_at)
        print(f"drill: killed at {drill.killed_at:.1f} s, back at {drill.restarted_at:.1f} s; "
              f"makespan {drill.makespan:.1f} s, ideal for the capacity left {ideal:.1f} s, "
              f"makespan ÷ ideal = {drill.makespan / ideal:.3f} (target ≤ 1.35)")  # fmt: skip
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        for simulator in simulators:
            if simulator.process and simulator.process.poll() is None:
                simulator.process.terminate()
                simulator.process.wait(timeout=10)
    print(f"logs and data: {workdir}")


@dataclass
class Outcome:
    makespan: float
    killed_at: float | None = None
    restarted_at: float | None = None


def run(
    args: argparse.Namespace,
    clip: Path,
    label: str,
    victim: Simulator | None = None,
    *,
    count: int,
) -> Outcome:
    from django.core.management import call_command
    from django.utils import timezone

    from apps.accounts.models import Membership, User
    from apps.billing import ledger
    from apps.billing.models import LedgerEntry
    from apps.billing.welcome import onboard_new_user
    from apps.jobs.models import Job, JobState
    from tests.jobs.swc import file_jobs

    user = User.objects.create_user(f"pool-{label}-{time.time_ns()}@example.com", "x")
    team = onboard_new_user(user=user)
    ledger.grant(team=team, credits=count * 10, key=f"bench:{team.pk}", memo="benchmark")
    membership = Membership.objects.select_related("team", "user").get(user=user, team=team)

    started = time.monotonic()
    jobs = file_jobs(membership, clip, count=count)
    ids = [job.pk for job in jobs]
    outcome = Outcome(makespan=0.0)
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        done = Job.objects.filter(pk__in=ids, state=JobState.SUCCEEDED).count()
        remaining = Job.objects.filter(pk__in=ids).in_flight().count()
        print(f"\r{label}: {len(ids) - remaining}/{len(ids)} ended ", end="", flush=True)
        if victim and outcome.killed_at is None and done >= 0.3 * count:
            victim.kill()
            outcome.killed_at = time.monotonic() - started
        if victim and outcome.restarted_at is None and done >= 0.6 * count:
            victim.start()
            outcome.restarted_at = time.monotonic() - started
        if not remaining:
            break
        time.sleep(0.2)
    print()
    finished = Job.objects.filter(pk__in=ids).exclude(finished_at=None)
    last = max((job.finished_at for job in finished if job.finished_at), default=timezone.now())
    outcome.makespan = (last - min(job.created_at for job in jobs)).total_seconds()

    states = Counter(Job.objects.filter(pk__in=ids).values_list("state", flat=True))
    sends = Counter(Job.objects.filter(pk__in=ids).values_list("attempts", flat=True))
    entries = Counter(
        tuple(sorted(LedgerEntry.objects.filter(job_id=pk).values_list("kind", flat=True)))
        for pk in ids
    )
    out = StringIO()
    try:
        call_command("reconcile", stdout=out, stderr=out)
        reconcile = "clean"
    except (SystemExit, Exception) as exc:
        reconcile = f"DRIFT ({exc})"
    print(f"{label}: states {dict(states)}; sends per job {dict(sorted(sends.items()))}")
    charged_once = entries == Counter({("capture", "hold"): count})
    print(f"{label}: ledger per job {dict(entries)} -> charged once: {charged_once}; "
          f"reconcile: {reconcile}")  # fmt: skip
    return outcome


def ideal_with_outage(work: float, killed_at: float, restarted_at: float) -> float:
    """When `work` server-seconds would be done on 3 servers, 2 between kill and restart."""
    done_before_restart = SERVERS * killed_at + (SERVERS - 1) * (restarted_at - killed_at)
    if done_before_restart >= work:  # would have ended during the outage
        return killed_at + (work - SERVERS * killed_at) / (SERVERS - 1)
    return restarted_at + (work - done_before_restart) / SERVERS


def make_sample(workdir: Path) -> Path:
    from tests.clips import make_clip

    return make_clip(workdir / "sora-export.mp4", seconds=1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per video (T)")
    parser.add_argument("--workers", type=int, default=4, help="qcluster worker processes")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait per run")
    return parser.parse_args()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    main()
