"""SWC pool benchmark: N file jobs over SWC simulators, through a real worker cluster.

    .venv/bin/python bench/pool.py                    # 200 jobs, 3 s per video
    .venv/bin/python bench/pool.py --jobs 60 --seconds 2
    .venv/bin/python bench/pool.py --overflow         # 300 jobs, 2 SWC + Replicate

Two runs, on the same processes, in a fresh folder (DATABASE_URL and REDIS_URL are used as
given in the environment):

1. steady: 3 servers, every one up. Each server runs one video at a time, so the best
   possible makespan is N·T/3; the ratio says how close the pool's dispatch comes to it.
2. drill: one server is killed (SIGKILL) when 30 % of the jobs are done and started again on
   the same port at 60 %. Its queue is lost, so its videos are sent elsewhere. The ideal is
   then the makespan of N·T server-seconds of work on the capacity that was really there
   (3 servers, then 2, then 3): every job must still succeed and be charged exactly once.

With `--overflow`, one run instead (default 300 jobs): 2 SWC servers and the Replicate
simulator behind them (`FILE_PROVIDERS=swc,replicate`; gunicorn serves Replicate the signed
originals and takes its webhooks). Replicate is elastic but starts at most R predictions in
any minute (`--replicate-rate`, its simulator's limit and the app's). The ideal makespan is
when the combined capacity would have done N videos: 2 servers at T each, plus R more from
Replicate at the start of every minute (each done T later). It prints the share of jobs each
provider cleaned, the p95 wait (from submission until the job was sent to the provider that
cleaned it) and the makespan against that ideal.

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
OVERFLOW_SERVERS = 2


@dataclass
class Simulator:
    """A process listening on a port: an SWC or Replicate simulator (or the web server)."""

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
    # Stopped with SIGTERM, it still stops what it started (the `finally` below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    workdir = Path(tempfile.mkdtemp(prefix="unmark-pool-bench-"))
    servers = OVERFLOW_SERVERS if args.overflow else SERVERS
    ports = [free_port() for _ in range(servers)]
    replicate_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "local",
        "VAR_DIR": str(workdir),
        "SWC_SERVERS": ",".join(f"http://127.0.0.1:{port}" for port in ports),
        "Q_WORKERS": str(args.workers),
        "PUBLIC_BASE_URL": "",
        "LOG_LEVEL": "INFO",
        "FILE_PROVIDERS": "swc",
    }
    if args.overflow:
        env |= {
            "FILE_PROVIDERS": "swc,replicate",
            # What the overflow rule reckons a video takes on a server, and how long a new
            # file may wait for one before it goes to Replicate.
            "SWC_SECONDS_PER_VIDEO": str(max(1, round(args.seconds))),
            "SWC_OVERFLOW_WAIT_SECONDS": str(round(args.overflow_wait)),
            "REPLICATE_SIMULATOR_PORT": str(replicate_port),
            "REPLICATE_CREATE_LIMIT": str(args.replicate_rate),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            "PORT": str(web_port),
        }
    env.pop("REPLICATE_API_TOKEN", None)  # the simulator, whatever the shell says
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
    if args.overflow:
        simulators.append(
            Simulator(
                replicate_port,
                [*manage, "replicate_simulator", "--port", str(replicate_port),
                 "--processing", str(args.seconds), "--rate-limit", str(args.replicate_rate)],
                env,
                logs / "replicate.log",
            )
        )  # fmt: skip
        simulators.append(
            Simulator(
                web_port,
                [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind",
                 f"127.0.0.1:{web_port}", "--workers", "2", "--threads", "8",
                 "--no-control-socket"],
                env,
                logs / "web.log",
            )
        )  # fmt: skip
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
        run(args, clip, "warm-up", count=2 * servers)
        if args.overflow:
            overflow(args, clip)
            return
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
    ids: list[int]
    killed_at: float | None = None
    restarted_at: float | None = None


def overflow(args: argparse.Namespace, clip: Path) -> None:
    from apps.jobs.models import Job

    jobs = args.jobs
    print(f"{jobs} file jobs, {OVERFLOW_SERVERS} SWC simulators at {args.seconds} s per video "
          f"+ Replicate at {args.replicate_rate} starts a minute, overflow past "
          f"{args.overflow_wait:.0f} s of expected wait, {args.workers} workers")  # fmt: skip
    outcome = run(args, clip, "overflow", count=jobs)
    done = list(Job.objects.filter(pk__in=outcome.ids).exclude(submitted_at=None))
    shares = Counter(job.provider for job in done)
    print("overflow: cleaned by " + ", ".join(
        f"{name} {count} ({count / len(outcome.ids):.0%})" for name, count in shares.most_common()
    ))  # fmt: skip
    for name in [None, *shares]:
        waits = sorted(
            (job.submitted_at - job.created_at).total_seconds()
            for job in done
            if job.submitted_at and name in (None, job.provider)
        )
        p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else float("nan")
        print(f"overflow: wait until sent ({name or 'all'}): p50 {waits[len(waits) // 2]:.1f} s, "
              f"p95 {p95:.1f} s")  # fmt: skip
    ideal = ideal_with_replicate(jobs, args.seconds, args.replicate_rate)
    print(f"overflow: makespan {outcome.makespan:.1f} s, ideal for the combined capacity "
          f"{ideal:.1f} s, makespan ÷ ideal = {outcome.makespan / ideal:.3f}")  # fmt: skip


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
    from tests.swc import file_jobs

    user = User.objects.create_user(f"pool-{label}-{time.time_ns()}@example.com", "x")
    team = onboard_new_user(user=user)
    ledger.grant(team=team, credits=count * 10, key=f"bench:{team.pk}", memo="benchmark")
    membership = Membership.objects.select_related("team", "user").get(user=user, team=team)

    started = time.monotonic()
    jobs = file_jobs(membership, clip, count=count)
    ids = [job.pk for job in jobs]
    outcome = Outcome(makespan=0.0, ids=ids)
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


def ideal_with_replicate(jobs: int, seconds: float, per_minute: int) -> float:
    """When `jobs` videos would be done on 2 servers taking `seconds` each, with Replicate
    starting `per_minute` more at the start of every minute (its limit is a window of a
    minute, not a steady rate) and finishing each `seconds` later."""
    t = 0.0
    while True:
        on_servers = OVERFLOW_SERVERS * t / seconds
        on_replicate = per_minute * (int((t - seconds) // 60) + 1) if t >= seconds else 0
        if on_servers + on_replicate >= jobs:
            return t
        t += 0.05


def make_sample(workdir: Path) -> Path:
    from tests.clips import make_clip

    return make_clip(workdir / "sora-export.mp4", seconds=1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=None, help="200; 300 with --overflow")
    parser.add_argument(
        "--overflow", action="store_true", help="2 SWC simulators with Replicate behind them"
    )
    parser.add_argument(
        "--replicate-rate", type=int, default=40, help="Replicate starts a minute (--overflow)"
    )
    parser.add_argument(
        "--overflow-wait",
        type=float,
        default=3.0,
        help="SWC_OVERFLOW_WAIT_SECONDS (--overflow)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per video (T)")
    parser.add_argument("--workers", type=int, default=4, help="qcluster worker processes")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait per run")
    args = parser.parse_args()
    if args.jobs is None:
        args.jobs = 300 if args.overflow else 200
    return args


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    main()
