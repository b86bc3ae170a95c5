"""What the multi-machine drills share (`bench/cluster.py`, `bench/soak.py`): the machines
(moto's S3 server, the Kie and SWC simulators, two gunicorn servers behind a round-robin
balancer, worker clusters), the simulated people who sign in and send batches over HTTP, and the
checks and figures read from the database afterwards.

Each machine is a process of its own, in its own process group, logging to `logs/<name>.log`;
a drill may kill one (`kill`) and start it again on the same port (`start_again`).
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
import threading
import time
import uuid
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


def stop_on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(1)


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
    """The machines of a drill. A drill adds to them by overriding `extra_env` (settings every
    machine gets) and `start_more` (more processes)."""

    def __init__(self, args: argparse.Namespace, workdir: Path, logs: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        # The last process started under each name, and how: what `kill` and `start_again` use.
        self.named: dict[str, subprocess.Popen[bytes]] = {}
        self.argv: dict[str, list[str]] = {}
        self.workers: list[WorkerProcess] = []
        self.web: list[subprocess.Popen[bytes]] = []

    # --- The machines ------------------------------------------------------------------------
    def extra_env(self) -> dict[str, str]:
        return {}

    def start_more(self, manage: list[str]) -> list[int]:
        """Starts a drill's own processes; returns the ports to wait for."""
        return []

    def start(self) -> None:
        s3_port, self.kie_port = free_port(), free_port()
        self.swc_ports = [free_port(), free_port()]
        self.web_ports = [free_port(), free_port()]
        self.balancer = TcpProxy(*(("127.0.0.1", port) for port in self.web_ports))
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
            "SWC_SERVERS": ",".join(f"http://127.0.0.1:{port}" for port in self.swc_ports),
            "SWC_SECONDS_PER_VIDEO": "1",
            # The simulators are quick: room for a few waiting videos keeps them busy, so the
            # worker clusters, not the pool, are what the run measures.
            "SWC_MAX_IN_FLIGHT": "4",
            "KIE_SIMULATOR_PORT": str(self.kie_port),
            "KIE_CREATE_LIMIT": "1000",
            # A killed worker's steps are taken up again after this (production: 60 s).
            "JOB_LEASE_SECONDS": "10",
            "Q_WORKERS": str(self.args.workers),
            "LOG_LEVEL": "INFO",
            **self.extra_env(),
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
        self._start("kie", [*manage, "kie_simulator", "--port", str(self.kie_port), "--latency",
                            "0.5", "1", "--rate-limit", "1000"])  # fmt: skip
        for port in self.swc_ports:
            seconds = str(self.args.swc_seconds)
            self._start(f"swc-{port}", [*manage, "swc_simulator", "--port", str(port),
                                        "--seconds-per-video", seconds])  # fmt: skip
        for port in self.web_ports:
            self.web.append(
                self._start(f"web-{port}", gunicorn_argv(port, workers=2, threads=4, timeout=60))
            )
        more = self.start_more(manage)
        for port in [s3_port, self.kie_port, *self.swc_ports, *self.web_ports, *more]:
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
        self.named[name], self.argv[name] = process, argv
        return process

    def kill(self, name: str) -> None:
        """Like its machine losing power: the process and its children, at once."""
        process = self.named[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def start_again(self, name: str, port: int) -> subprocess.Popen[bytes]:
        process = self._start(name, self.argv[name])
        wait_for_port(port)
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


def run_jobs(label: str):
    from apps.jobs.models import Job

    return Job.objects.filter(created_by__email__startswith=f"{label}-")


def jobs_ended(label: str) -> int:
    return run_jobs(label).exclude(finished_at=None).count()


def ledger_kinds_by_job(job_ids: list[int]) -> dict[int, list[str]]:
    from apps.billing.models import LedgerEntry

    kinds: dict[int, list[str]] = {job_id: [] for job_id in job_ids}
    for job_id, kind in LedgerEntry.objects.filter(job_id__in=job_ids).values_list(
        "job_id", "kind"
    ):
        kinds[job_id].append(kind)
    return kinds


def run_reconcile() -> subprocess.CompletedProcess[str]:
    """`manage.py reconcile` as an operator runs it: its exit status says whether it is clean."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "reconcile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def first_sent(jobs: list) -> dict:
    """When each job was first sent to a provider (its first move to SUBMITTED), by job id."""
    from django.db.models import Min

    from apps.jobs.models import JobEvent, JobState

    return dict(
        JobEvent.objects.filter(job__in=jobs, to_state=JobState.SUBMITTED)
        .values("job_id")
        .annotate(at=Min("created_at"))
        .values_list("job_id", "at")
    )


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):.2f} s, p95 {p95:.2f} s"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
