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
import logging
import os
import random
import secrets
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import (  # noqa: E402
    TcpProxy,
    WorkerProcess,
    free_port,
    gunicorn_argv,
    spawn,
    wait_for_port,
)

BUCKET = "unmark-drill"
PASSWORD = "drill-password-8214"  # noqa: S105 (throwaway accounts of the drill)
# A request that dies with its web server is sent again this many times (to the other one).
REQUEST_ATTEMPTS = 5
SIGN_IN_ATTEMPTS = 20


class Violation(Exception):
    """Something the drill promises did not hold."""


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
    stack = Stack(args, workdir, logs)
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


def stop_on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(1)


@dataclass
class Outcome:
    throughput: float


@dataclass
class Progress:
    """What the people's threads have done, read by the main thread to time the kills."""

    batches_sent: int = 0
    failovers: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when the run is over or given up: the people stop sending.
    stopping: threading.Event = field(default_factory=threading.Event)


class Stack:
    def __init__(self, args: argparse.Namespace, workdir: Path, logs: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workers: list[WorkerProcess] = []
        self.web: list[subprocess.Popen[bytes]] = []

    # --- The machines ------------------------------------------------------------------------
    def start(self) -> None:
        s3_port, kie_port = free_port(), free_port()
        swc_ports = [free_port(), free_port()]
        web_ports = [free_port(), free_port()]
        self.balancer = TcpProxy(*(("127.0.0.1", port) for port in web_ports))
        self.base_url = f"http://127.0.0.1:{self.balancer.port}"
        self.s3_url = f"http://127.0.0.1:{s3_port}"
        # What every machine is given, as an operator's `.env` would give it.
        self.env = {
            **os.environ,
            "DJANGO_ENV": "local",
            "VAR_DIR": str(self.workdir / "var"),
            "SECRET_KEY": secrets.token_urlsafe(50),
            "PUBLIC_BASE_URL": self.base_url,
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": self.s3_url,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": "drill",
            "AWS_SECRET_ACCESS_KEY": "drill",
            "SWC_SERVERS": ",".join(f"http://127.0.0.1:{port}" for port in swc_ports),
            "SWC_SECONDS_PER_VIDEO": "1",
            # The simulators are quick: room for a few waiting videos keeps them busy, so the
            # worker clusters, not the pool, are what the run measures.
            "SWC_MAX_IN_FLIGHT": "4",
            "KIE_SIMULATOR_PORT": str(kie_port),
            "KIE_CREATE_LIMIT": "1000",
            # A killed worker's steps are taken up again after this (production: 60 s).
            "JOB_LEASE_SECONDS": "10",
            "Q_WORKERS": str(self.args.workers),
            "LOG_LEVEL": "INFO",
        }
        self.env.pop("KIE_API_KEY", None)  # no key: links go to the Kie simulator
        os.environ.update(self.env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

        import django

        django.setup()
        logging.getLogger().setLevel(logging.WARNING)  # the processes log to files
        from django.core.management import call_command
        from django_q.brokers import get_broker

        from apps import taskqueue
        from apps.jobs import queue

        call_command("migrate", verbosity=0)
        # Tasks or a poller lock left by an earlier run that was stopped half-way.
        get_broker().purge_queue()
        from django.core.cache import cache

        cache.delete_many([queue.POLLER_LOCK, taskqueue.HEARTBEATS])

        manage = [sys.executable, str(ROOT / "manage.py")]
        self._start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                           "-p", str(s3_port)])  # fmt: skip
        self._start("kie", [*manage, "kie_simulator", "--port", str(kie_port), "--latency",
                            "0.5", "1", "--rate-limit", "1000"])  # fmt: skip
        for port in swc_ports:
            seconds = str(self.args.swc_seconds)
            self._start(f"swc-{port}", [*manage, "swc_simulator", "--port", str(port),
                                        "--seconds-per-video", seconds])  # fmt: skip
        for port in web_ports:
            self.web.append(
                self._start(f"web-{port}", gunicorn_argv(port, workers=2, threads=4, timeout=60))
            )
        for port in [s3_port, kie_port, *swc_ports, *web_ports]:
            wait_for_port(port)
        import boto3

        boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name=self.env["AWS_S3_REGION_NAME"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=BUCKET)

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        process = spawn(name, argv, self.env, self.logs)
        self.processes.append(process)
        return process

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(
            var_dir=self.logs,
            simulator_port=int(self.env["KIE_SIMULATOR_PORT"]),
            extra_env={k: v for k, v in self.env.items() if k != "KIE_API_KEY"},
        )
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        # All at once: each finishes the tasks it holds (a poller's run included) first.
        with ThreadPoolExecutor(max_workers=max(1, len(self.workers))) as pool:
            list(pool.map(WorkerProcess.stop, self.workers))
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.balancer.cut()

    def sample_clip(self) -> bytes:
        from tests.clips import make_clip

        return make_clip(self.workdir / "sora-export.mp4", seconds=1).read_bytes()

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


# --- The people -------------------------------------------------------------------------------
@dataclass
class Batch:
    files: list[tuple[str, bytes]]
    links: list[str]
    submission: str = field(default_factory=lambda: str(uuid.uuid4()))


def plan_batches(label: str, jobs: int, size: int, clip: bytes) -> list[Batch]:
    """Half files, half links, `size` of each per batch (the last ones smaller)."""
    files = [(f"{label}-{i}.mp4", unique_clip(clip, i)) for i in range(jobs // 2)]
    run = uuid.uuid4().int % 10**12
    links = [f"https://sora.chatgpt.com/p/s_{run:012x}{i:020x}" for i in range(jobs - len(files))]
    count = max(-(-len(files) // size), -(-len(links) // size))
    return [
        Batch(files=files[i * size : (i + 1) * size], links=links[i * size : (i + 1) * size])
        for i in range(count)
    ]


def unique_clip(clip: bytes, index: int) -> bytes:
    """The clip with a `free` box (which players skip) naming it: each file is a different
    video to the app, which would otherwise clean a repeated file only once."""
    tag = f"drill video {index} {uuid.uuid4()}".encode()
    return clip + struct.pack(">I4s", 8 + len(tag), b"free") + tag


def make_people(label: str, count: int, jobs: int) -> list[str]:
    """People with their personal teams and the credits their share of the jobs needs."""
    from apps.accounts.models import User
    from apps.billing import ledger
    from apps.billing.welcome import onboard_new_user

    emails = []
    for index in range(count):
        email = f"{label}-{index}@drill.example"
        user = User.objects.create_user(email, PASSWORD)
        team = onboard_new_user(user=user)
        ledger.grant(team=team, credits=jobs * 10, key=f"drill:{team.pk}", memo="drill")
        emails.append(email)
    return emails


class Person:
    """Someone with a browser: signs in, uploads files to the bucket, sends batches."""

    def __init__(self, email: str, base_url: str, progress: Progress) -> None:
        self.email = email
        self.progress = progress
        # No connection is kept open: every request goes through the balancer afresh, so
        # consecutive requests land on alternate web servers.
        self.http = httpx.Client(
            base_url=base_url,
            timeout=60,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.bucket = httpx.Client(timeout=60)

    def send(self, batches: list[Batch]) -> None:
        try:
            self.sign_in()
            for batch in batches:
                if self.progress.stopping.is_set():
                    return
                self.send_batch(batch)
                with self.progress.lock:
                    self.progress.batches_sent += 1
        except Exception as exc:  # the main thread reports it and stops the run
            self.progress.errors.append(f"{self.email}: {type(exc).__name__}: {exc}")
        finally:
            self.http.close()
            self.bucket.close()

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        for attempt in range(REQUEST_ATTEMPTS):
            if method == "POST":
                data = kwargs.setdefault("data", {})
                data["csrfmiddlewaretoken"] = self.http.cookies.get("csrftoken", "")  # type: ignore[index]
            try:
                return self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError:
                # Its web server died under it: the balancer sends the next try elsewhere.
                with self.progress.lock:
                    self.progress.failovers += 1
                if attempt == REQUEST_ATTEMPTS - 1:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def sign_in(self) -> None:
        self.request("GET", "/accounts/login/")
        for _ in range(SIGN_IN_ATTEMPTS):
            answer = self.request(
                "POST", "/accounts/login/", data={"login": self.email, "password": PASSWORD}
            )
            # allauth's rate limit answers 429 when another sign-in from the same address
            # holds its lock at that moment (everyone here is 127.0.0.1): try again.
            if answer.status_code != 429:
                break
            time.sleep(random.uniform(0.2, 1.0))
        if answer.status_code != 302:
            raise Violation(f"sign-in answered {answer.status_code}")
        team_page = self.request("GET", "/dashboard/").headers["location"]
        self.team = team_page.removesuffix("dashboard/")

    def send_batch(self, batch: Batch) -> None:
        uploads = [self.upload(name, content) for name, content in batch.files]
        answer = self.request(
            "POST",
            f"{self.team}jobs/",
            data={
                "links": "\n".join(batch.links),
                "uploads": uploads,
                "submission": batch.submission,
                "owns_videos": "on",
            },
        )
        # A form resent after its web server died is recognised and creates nothing again.
        if answer.status_code != 302 and "already added when this form" not in answer.text:
            raise Violation(f"a batch was refused ({answer.status_code}): {page_error(answer)}")

    def upload(self, name: str, content: bytes) -> str:
        """As the dashboard's script does with S3 storage: a presigned POST straight to the
        bucket, then the web server checks what arrived. Returns the upload's id."""
        for _ in range(REQUEST_ATTEMPTS):
            presign = self.request("POST", f"{self.team}uploads/presign/")
            if presign.status_code != 200:
                raise Violation(f"no presigned POST ({presign.status_code}): {presign.text}")
            post = presign.json()
            stored = self.bucket.post(
                post["url"], data=post["fields"], files={"file": (name, content, "video/mp4")}
            )
            if stored.status_code not in (200, 201, 204):
                raise Violation(f"the bucket refused an upload ({stored.status_code})")
            answer = self.request(
                "POST",
                f"{self.team}uploads/confirm/",
                data={"ticket": post["ticket"], "name": name},
            )
            if answer.status_code == 201:
                return str(answer.json()["id"])
            if "already received" not in answer.text:
                raise Violation(f"an upload was refused ({answer.status_code}): {answer.text}")
            # Confirmed by a web server that died before it answered: the id went with it, so
            # the file is sent again (the first copy is never submitted, and expires).
        raise Violation(f"{name} could not be uploaded")


def page_error(answer: httpx.Response) -> str:
    text = answer.text
    start = text.find('class="errorlist')
    return text[start : start + 300] if start >= 0 else text[:300]


# --- Checks and figures -----------------------------------------------------------------------
def run_jobs(label: str):
    from apps.jobs.models import Job

    return Job.objects.filter(created_by__email__startswith=f"{label}-")


def jobs_ended(label: str) -> int:
    return run_jobs(label).exclude(finished_at=None).count()


def check_and_report(label: str, expected: int, batches: int) -> Outcome:
    from django.db.models import Min

    from apps.billing import ledger
    from apps.billing.models import LedgerEntry
    from apps.jobs.models import JobEvent, JobState

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
    reconcile = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "reconcile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if reconcile.returncode:
        raise Violation(f"{label}: reconcile found drift:\n{reconcile.stdout}{reconcile.stderr}")

    first_sent = dict(
        JobEvent.objects.filter(job__in=jobs, to_state=JobState.SUBMITTED)
        .values("job_id")
        .annotate(at=Min("created_at"))
        .values_list("job_id", "at")
    )
    waiting = [(first_sent[job.pk] - job.created_at).total_seconds() for job in jobs]
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


def ledger_kinds_by_job(job_ids: list[int]) -> dict[int, list[str]]:
    from apps.billing.models import LedgerEntry

    kinds: dict[int, list[str]] = {job_id: [] for job_id in job_ids}
    for job_id, kind in LedgerEntry.objects.filter(job_id__in=job_ids).values_list(
        "job_id", "kind"
    ):
        kinds[job_id].append(kind)
    return kinds


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):.2f} s, p95 {p95:.2f} s"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


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
