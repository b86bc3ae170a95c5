"""The running stack, for every folder of tests: a Kie simulator on an ephemeral port, the real
client pointed at it, a callback catcher, a worker that runs broker messages in this process,
local storage, and a pool of SWC simulators (a plugin of `tests/conftest.py`)."""

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from apps import taskqueue
from apps.accounts.models import Membership, User
from apps.billing import ledger
from apps.jobs import dispatcher, lifecycle, submission
from apps.jobs.models import Job, JobState
from apps.removal.base import InputKind, TaskInput, TaskState, TaskStatus
from apps.removal.kie import KieProvider
from apps.simulators.kie import KieSimulator, SimulatorConfig
from tests.swc import STALL_SECONDS, Pool

SIM_KEY = "sim-test-key"
HMAC_KEY = "whsec-test-hmac-key"
SORA_LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"
VIDEO = b"\x00\x00\x00\x18ftypisom" + b"video-bytes" * 100
# Fast enough for the suite, slow enough that tasks pass through their states.
TEST_LATENCY = (0.05, 0.05)


class FakeClock:
    """The simulator's clock, moved by hand: states and the 429 window without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., KieSimulator]]:
    """`make_simulator(failure_rate=1, clock=clock)` starts one; all stop after the test."""
    started: list[KieSimulator] = []

    def make(*, clock: Callable[[], float] = time.monotonic, **settings: object) -> KieSimulator:
        settings.setdefault("latency", TEST_LATENCY)
        settings.setdefault("api_key", SIM_KEY)
        simulator = KieSimulator(SimulatorConfig(**settings), clock=clock)  # type: ignore[arg-type]
        started.append(simulator.start())
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., KieSimulator]) -> KieSimulator:
    return make_simulator()


@pytest.fixture
def make_kie() -> Iterator[Callable[..., KieProvider]]:
    """`make_kie(simulator, webhook_hmac_key=...)`: the real client for a simulator."""
    built: list[KieProvider] = []

    def make(simulator: KieSimulator, **options: object) -> KieProvider:
        options.setdefault("api_key", SIM_KEY)
        options.setdefault("timeout_seconds", 5.0)
        provider = KieProvider(base_url=simulator.url, **options)  # type: ignore[arg-type]
        built.append(provider)
        return provider

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def kie(make_kie: Callable[..., KieProvider], simulator: KieSimulator) -> KieProvider:
    return make_kie(simulator)


def link_task(link: str, *, callback_url: str | None = None) -> TaskInput:
    """What the pipeline hands a provider for a pasted link."""
    return TaskInput(kind=InputKind.LINK, reference="job-1", callback_url=callback_url, link=link)


def wait_until_final(kie: KieProvider, task_id: str) -> TaskStatus:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = kie.status(task_id)
        if status.state in (TaskState.SUCCEEDED, TaskState.FAILED):
            return status
        time.sleep(0.02)
    pytest.fail(f"task {task_id} did not finish")


@dataclass
class Callback:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, object]:
        return json.loads(self.body)


@dataclass
class CallbackCatcher:
    """Our side of Kie's callbacks: records every POST and answers as the contract asks."""

    url: str
    received: "queue.Queue[Callback]" = field(default_factory=queue.Queue)

    def next(self) -> Callback:
        try:
            return self.received.get(timeout=10)
        except queue.Empty:
            pytest.fail("no callback arrived")


@pytest.fixture
def callbacks() -> Iterator[CallbackCatcher]:
    catcher: CallbackCatcher

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            catcher.received.put(Callback(dict(self.headers.items()), body))
            answer = b'{"code": 200, "msg": "success"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    catcher = CallbackCatcher(f"http://127.0.0.1:{server.server_address[1]}/hooks/kie/token-1/")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield catcher
    server.shutdown()
    server.server_close()
    thread.join()


class Worker:
    """Runs what waits on the real broker (ORM or Redis) in this process, as a worker would:
    the sends queue first, then the default one."""

    def __init__(self) -> None:
        default, sends = (get_broker(name) for name in taskqueue.queue_names())
        self.brokers = [sends, default]
        self.purge()

    def __call__(self, limit: int = 1000) -> int:
        ran = 0
        while self.queue_size() and ran < limit:
            broker = next(broker for broker in self.brokers if broker.queue_size())
            for task_id, payload in broker.dequeue() or []:
                task = SignedPackage.loads(payload)
                import_string(task["func"])(*task["args"], **task["kwargs"])
                broker.acknowledge(task_id)
                ran += 1
        return ran

    def queue_size(self) -> int:
        """Tasks waiting in every queue."""
        return sum(broker.queue_size() for broker in self.brokers)

    def purge(self) -> None:
        for broker in self.brokers:
            broker.purge_queue()


@pytest.fixture
def run_tasks() -> Worker:
    return Worker()


@dataclass
class SimStack:
    simulator: KieSimulator
    media: Path

    def wait_until_done(self, task_id: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = next(t for t in self.simulator.seen()["tasks"] if t["taskId"] == task_id)
            if task["state"] in ("success", "fail"):
                return
            time.sleep(0.02)
        pytest.fail(f"simulator task {task_id} did not finish")

    def callback_body(self, task_id: str) -> dict[str, object]:
        """What Kie posts when a task ends (its documented success shape)."""
        return {
            "code": 200,
            "msg": "Playground task completed successfully.",
            "data": {"taskId": task_id, "state": "success", "model": "sora-watermark-remover"},
        }

    def stored_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.media)) for p in self.media.rglob("*") if p.is_file())


@pytest.fixture
def sim_stack(make_simulator, settings, tmp_path: Path, media_storage: Path) -> SimStack:
    """A Kie simulator the app is pointed at, and storage in a fresh folder."""
    simulator = make_simulator()
    settings.KIE_SIMULATOR = True
    settings.KIE_BASE_URL = simulator.url
    settings.KIE_API_KEY = SIM_KEY
    settings.KIE_WEBHOOK_HMAC_KEY = ""
    settings.PUBLIC_BASE_URL = ""
    # A poller run in-process makes one round instead of looping for a minute.
    settings.POLLER_RUN_SECONDS = 0
    settings.DOWNLOAD_TEMP_DIR = str(tmp_path / "tmp")
    return SimStack(simulator, media_storage)


@pytest.fixture
def alice_membership(alice: User) -> Membership:
    """Alice in her personal team, which has its sign-up credits."""
    return Membership.objects.select_related("team", "user").get(user=alice, team__is_personal=True)


@pytest.fixture
def drive(run_tasks: Worker) -> Callable[..., None]:
    """Works jobs until they end: runs tasks, and lets waiting jobs come due at once."""

    def until_final(jobs: list[Job], seconds: float = 60) -> None:
        ids = [job.pk for job in jobs]
        # A deadline, not a number of rounds: a round takes longer on a busy machine.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            run_tasks()
            if not Job.objects.filter(pk__in=ids).in_flight().exists():
                return
            Job.objects.filter(pk__in=ids).in_flight().update(next_check_at=timezone.now())
            dispatcher.poll_due_jobs(run_seconds=0)
            time.sleep(0.03)  # the simulator's own clock moves its tasks along
        pytest.fail(
            "jobs did not finish: "
            + ", ".join(Job.objects.filter(pk__in=ids).values_list("state", flat=True))
        )

    return until_final


@pytest.fixture
def media_storage(settings, tmp_path: Path) -> Path:
    """Stored results go to a fresh folder."""
    media = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": media},
        },
    }
    return media


def finished_job(membership: Membership, link: str = SORA_LINK) -> Job:
    """A job that went through the real service calls and has a stored result (needs
    `media_storage`)."""
    [job] = submission.submit_jobs(membership=membership, links=[link])
    job.move(JobState.SUBMITTED, task_id="task-1")
    job.move(JobState.DOWNLOADING, result_url="https://example.com/out.mp4")
    name = default_storage.save(f"results/{job.public_id}.mp4", ContentFile(VIDEO))
    lifecycle.succeed_job(job, name=name, size=len(VIDEO), sha256="x" * 64)
    return job


@pytest.fixture
def pool(settings, tmp_path: Path, media_storage: Path, alice_membership) -> Iterator[Pool]:
    """SWC simulators to start (`pool.start({}, {})`), stopped after the test; Alice's team
    has credits for the videos."""
    ledger.grant(team=alice_membership.team, credits=1000, key="drills", memo="pool drills")
    settings.SWC_STALL_SECONDS = STALL_SECONDS
    # The pool alone: with it down, files wait for it (drills with Replicate behind it set
    # the policy themselves).
    settings.FILE_PROVIDERS = ["swc"]
    settings.POLLER_RUN_SECONDS = 0  # a poller run in-process makes one round
    settings.DOWNLOAD_TEMP_DIR = str(tmp_path / "tmp")
    running = Pool(settings)
    yield running
    running.stop()


@pytest.fixture
def step(run_tasks: Worker) -> Callable[[], None]:
    """One round of what the workers and the dispatcher do, in this process."""

    def once() -> None:
        run_tasks()
        dispatcher.poll_due_jobs(run_seconds=0)
        run_tasks()

    return once
