"""Multi-machine drill: web servers and worker clusters as separate machines run them, on one
PostgreSQL, one Redis, one bucket and a pool of SWC servers — with one web server and one
worker killed mid-run.

    export DATABASE_URL=postgres://unmark@127.0.0.1:5432/unmark_drill
    export REDIS_URL=redis://127.0.0.1:6379/14
    .venv/bin/python bench/cluster.py        # 300 jobs, 2 web servers, 3 worker clusters

It needs a PostgreSQL database and a Redis database of its own: it migrates the database it is
given and empties django-q2's queue on that Redis database. `.ci/run` runs it. Each part is a
process of its own: moto's S3 server (the bucket), two SWC simulators and the Kie simulator,
two gunicorn servers behind a tiny round-robin balancer (in this process: each connection goes
to the next server, and a dead one drops out), and the worker clusters (`manage.py worker`).
Kie's callbacks come in through the balancer, as they would through a load balancer.

Simulated people sign in over HTTP and send the workload the way the dashboard's script does:
half uploaded files (a presigned POST straight into the bucket, then "confirm", which the web
server checks), half pasted links, in batches of both. Every request opens its own connection,
so the balancer alternates between the web servers; a request that dies with its server is
sent again (a resent form is recognised by its submission id and makes nothing twice).

Two runs of the same workload, on fresh teams:
1. baseline: one worker cluster, nothing killed;
2. drill: three clusters; when a third of the batches are in, one web server is killed
   (SIGKILL, and left dead); when a third of the jobs have ended, one worker cluster is killed
   (SIGKILL to its whole process group: its tasks in hand are lost) and started again.

Checks, each run (any violation exits 1): every batch made its jobs exactly once; every job
ended within the deadline and succeeded; each was settled exactly once (one hold, one
capture); no credits stay held and every balance is what was paid; `manage.py reconcile` is
clean. Figures: throughput (jobs ÷ makespan, first job created to last job ended), waiting
(job created → sent to its provider) and total time p50/p95, and the scaling factor (drill
throughput ÷ baseline throughput). On a machine with few cores every process shares them, so
the factor says how well clusters share the work, not what separate machines would add.
"""

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.drill import (
    Person,
    Progress,
    Stack,
    Violation,
    first_sent,
    jobs_ended,
    ledger_kinds_by_job,
    load_average,
    make_people,
    percentiles,
    plan_batches,
    run_jobs,
    run_reconcile,
    stop_on_sigterm,
)


def main() -> int:
    args = parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "REDIS_URL"
    ):
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL: the drill needs both.")
    # Stopped with SIGTERM, it still stops what it started (the `finally` below), and a second
    # SIGTERM does not cut that short.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="unmark-cluster-drill-"))
    logs = workdir / "logs"
    logs.mkdir()
    stack = ClusterStack(args, workdir, logs)
    try:
        stack.start()
        clip = stack.sample_clip()
        print(
            f"{args.jobs} jobs ({args.jobs // 2} files, {args.jobs - args.jobs // 2} links) by "
            f"{args.people} people in batches of {args.batch}; 2 web servers (gunicorn "
            f"2x4) behind a round-robin balancer; SWC pool of 2 simulators "
            f"({args.swc_seconds} s a video); Kie simulator; {args.workers} processes per "
            f"worker cluster; load average {load_average()}"
        )
        baseline = stack.run("baseline", clip, clusters=1, faults=False)
        drill = stack.run("drill", clip, clusters=args.clusters, faults=True)
    except Violation as exc:
        print(f"\nVIOLATION: {exc}\nlogs and data: {workdir}")
        return 1
    finally:
        stack.stop()
    factor = drill.throughput / baseline.throughput
    print(
        f"scaling factor: {drill.throughput:.2f} ÷ {baseline.throughput:.2f} jobs/s = "
        f"{factor:.2f} ({args.clusters} clusters with one web server and one worker killed, "
        f"against one cluster; {os.cpu_count()} cores shared by every process)"
    )
    print(f"load average at the end: {load_average()}")
    print(f"logs and data: {workdir}")
    return 0


@dataclass
class Outcome:
    throughput: float


class ClusterStack(Stack):
    def extra_env(self) -> dict[str, str]:
        # The drill's clips carry no Sora mark (our remover would rightly refuse them): its
        # files go to the SWC pool, whose bookings are what kills put to the test.
        return {"FILE_PROVIDERS": "swc"}

    # --- One run ------------------------------------------------------------------------------
    def run(self, name: str, clip: bytes, *, clusters: int, faults: bool) -> Outcome:
        args = self.args
        # People's addresses start with it: how this run's jobs are told from earlier ones.
        label = f"{name}-{secrets.token_hex(3)}"
        people = make_people(label, args.people, args.jobs)
        batches = plan_batches(label, args.jobs, args.batch, clip)
        for worker in [self.start_worker() for _ in range(clusters)]:
            worker.wait_until_running()
        progress = Progress()
        web_killed = worker_killed = None
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.people) as pool:
            sent = [
                pool.submit(Person(email, self.base_url, progress).send, mine)
                for email, mine in zip(
                    people, [batches[i :: args.people] for i in range(args.people)], strict=True
                )
            ]
            deadline = started + args.timeout
            try:
                while time.monotonic() < deadline:
                    ended = jobs_ended(label)
                    print(f"\r{label}: {progress.batches_sent}/{len(batches)} batches sent, "
                          f"{ended}/{args.jobs} jobs ended ", end="", flush=True)  # fmt: skip
                    if progress.errors:
                        raise Violation(f"{label}: {progress.errors[0]}")
                    if faults and web_killed is None and progress.batches_sent >= len(batches) / 3:
                        # Like the machine losing power: the master and its workers, at once.
                        os.killpg(self.web[0].pid, signal.SIGKILL)
                        web_killed = time.monotonic() - started
                    if faults and worker_killed is None and ended >= args.jobs / 3:
                        self.workers[0].kill()
                        worker_killed = time.monotonic() - started
                        time.sleep(1)
                        self.start_worker()
                    if ended >= args.jobs and all(future.done() for future in sent):
                        break
                    time.sleep(0.25)
            finally:
                progress.stopping.set()  # the people stop sending, whatever happened
            print()
            if not all(future.done() for future in sent):
                raise Violation(f"{label}: the people were still sending at the deadline")
        if faults:
            print(f"{label}: web server killed at {describe(web_killed)}, worker cluster "
                  f"killed and started again at {describe(worker_killed)}; "
                  f"{progress.failovers} requests sent again to the other web server")  # fmt: skip
            if web_killed is None or worker_killed is None:
                raise Violation(f"{label}: the run ended before both kills happened")
        outcome = check_and_report(label, args.jobs, len(batches))
        self.stop_workers()
        return outcome


def describe(moment: float | None) -> str:
    return "never" if moment is None else f"{moment:.1f} s"


# --- Checks and figures -----------------------------------------------------------------------
def check_and_report(label: str, expected: int, batches: int) -> Outcome:
    from apps.billing import ledger
    from apps.billing.models import LedgerEntry
    from apps.jobs.models import JobState

    jobs = list(run_jobs(label).select_related("team"))
    states = Counter(job.state for job in jobs)
    kinds = Counter(job.input_kind for job in jobs)
    print(f"{label}: {len(jobs)} jobs {dict(kinds)}; states {dict(states)}")
    if len(jobs) != expected:
        raise Violation(f"{label}: {len(jobs)} jobs were made for {expected} sent")
    submissions = Counter(job.submission_id for job in jobs)
    if len(submissions) != batches:
        raise Violation(f"{label}: {len(submissions)} submissions for {batches} batches")
    if stuck := [job for job in jobs if job.is_in_flight]:
        raise Violation(
            f"{label}: {len(stuck)} jobs had not ended by the deadline "
            f"({dict(Counter(job.state for job in stuck))})"
        )
    if failed := [job for job in jobs if job.state != JobState.SUCCEEDED]:
        raise Violation(
            f"{label}: {len(failed)} jobs did not succeed, e.g. {failed[0].pk}: "
            f"{failed[0].failure_message or failed[0].state}"
        )
    entries = Counter(
        tuple(sorted(kinds)) for kinds in ledger_kinds_by_job([job.pk for job in jobs]).values()
    )
    if entries != Counter({("capture", "hold"): len(jobs)}):
        raise Violation(f"{label}: ledger entries per job {dict(entries)}, not one hold + capture")
    for team in {job.team for job in jobs}:
        wallet = ledger.open_wallet(team)
        paid = sum(job.credits for job in jobs if job.team_id == team.pk)
        granted = LedgerEntry.objects.filter(team=team, kind="grant").values_list(
            "amount", flat=True
        )
        if wallet.held or wallet.balance != sum(granted) - paid:
            raise Violation(
                f"{label}: team {team.pk} has {wallet.held} held, {wallet.balance} left"
            )
    sends = Counter(job.attempts for job in jobs)
    reconcile = run_reconcile()
    if reconcile.returncode:
        raise Violation(f"{label}: reconcile found drift:\n{reconcile.stdout}{reconcile.stderr}")

    sent = first_sent(jobs)
    waiting = [(sent[job.pk] - job.created_at).total_seconds() for job in jobs]
    total = [(job.finished_at - job.created_at).total_seconds() for job in jobs]
    makespan = (
        max(job.finished_at for job in jobs) - min(job.created_at for job in jobs)
    ).total_seconds()
    throughput = len(jobs) / makespan
    print(f"{label}: every job succeeded and was charged once; sends per job "
          f"{dict(sorted(sends.items()))}; reconcile: {reconcile.stdout.strip()}")  # fmt: skip
    print(f"{label}: makespan {makespan:.1f} s, throughput {throughput:.2f} jobs/s; "
          f"waiting {percentiles(waiting)}; total {percentiles(total)}")  # fmt: skip
    return Outcome(throughput=throughput)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=300, help="jobs per run, half files")
    parser.add_argument("--clusters", type=int, default=3, help="worker clusters in the drill")
    parser.add_argument("--workers", type=int, default=2, help="processes per worker cluster")
    parser.add_argument("--people", type=int, default=6, help="people sending at once")
    parser.add_argument("--batch", type=int, default=5, help="files (and links) per batch")
    parser.add_argument("--swc-seconds", type=float, default=0.2, help="seconds an SWC run takes")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per run")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
