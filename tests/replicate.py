"""Fixtures and helpers for Replicate tests: the simulator on an ephemeral port, the real client
pointed at it, a file server for inputs, and file jobs sent to Replicate.

Until routing picks providers, a job goes to Replicate because its row says so
(`provider="replicate"`, as `replicate_file_jobs` makes them): explicit, not the registry's
preference (which sends files to the SWC pool first)."""

import functools
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Membership
from apps.billing import ledger
from apps.jobs import queue
from apps.jobs.models import Job, JobEvent, JobState
from apps.removal.base import InputKind, TaskInput, TaskState, TaskStatus
from apps.removal.replicate import ReplicateProvider
from apps.simulators.replicate import ReplicateSimConfig, ReplicateSimulator
from tests.clips import make_clip

SIM_TOKEN = "r8_sim-test-token"
PRICE = Decimal("0.001")  # dollars per second of predict_time, for round figures


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "sora-export.mp4", seconds=1)


@pytest.fixture
def file_server(clip: Path) -> Iterator[str]:
    """Serves the clip's folder over HTTP: where a test's input URL points."""
    handler = functools.partial(_QuietFiles, directory=str(clip.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def make_replicate_simulator() -> Iterator[Callable[..., ReplicateSimulator]]:
    """`make_replicate_simulator(cold_start_seconds=1)` starts one; all stop after the test."""
    started: list[ReplicateSimulator] = []

    def make(**config: object) -> ReplicateSimulator:
        config.setdefault("api_token", SIM_TOKEN)
        config.setdefault("processing_seconds", 0.05)
        simulator = ReplicateSimulator(ReplicateSimConfig(**config))  # type: ignore[arg-type]
        started.append(simulator.start())
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def replicate_simulator(make_replicate_simulator) -> ReplicateSimulator:
    return make_replicate_simulator()


@pytest.fixture
def make_replicate() -> Iterator[Callable[..., ReplicateProvider]]:
    """`make_replicate(simulator, api_token=...)`: the real client for a simulator."""
    built: list[ReplicateProvider] = []

    def make(simulator: ReplicateSimulator, **options: object) -> ReplicateProvider:
        options.setdefault("api_token", SIM_TOKEN)
        options.setdefault("model", f"{simulator.config.model}:{simulator.config.version}")
        options.setdefault("price_per_second", PRICE)
        options.setdefault("timeout_seconds", 5.0)
        provider = ReplicateProvider(base_url=simulator.url, **options)  # type: ignore[arg-type]
        built.append(provider)
        return provider

    yield make
    for provider in built:
        provider.close()


def file_task(url: str, *, callback_url: str | None = None) -> TaskInput:
    """What the pipeline hands Replicate for an uploaded file: a way to sign a link to it."""
    return TaskInput(
        kind=InputKind.FILE,
        reference="job-1",
        callback_url=callback_url,
        signed_url=lambda seconds: url,
        name="sora-export.mp4",
    )


def wait_for_state(
    client: ReplicateProvider, task_id: str, *states: TaskState, seconds: float = 20
) -> TaskStatus:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = client.status(task_id)
        if status.state in states:
            return status
        time.sleep(0.02)
    pytest.fail(f"prediction {task_id} did not reach {states}")


def replicate_file_jobs(membership: Membership, clip: Path, count: int = 1) -> list[Job]:
    """Jobs for uploaded files sent to Replicate, made the way the upload form makes them:
    originals in storage, credits held, the poller started on commit."""
    with transaction.atomic():
        jobs = [
            Job.objects.create(
                team=membership.team,
                created_by=membership.user,
                input_kind=InputKind.FILE,
                original_file=default_storage.save(
                    "originals/test/clip.mp4", File(clip.open("rb"))
                ),
                original_name=clip.name,
                original_size=clip.stat().st_size,
                provider="replicate",
                credits=settings.CREDITS_PER_VIDEO,
                next_check_at=timezone.now(),
            )
            for _ in range(count)
        ]
        JobEvent.objects.bulk_create(
            JobEvent(job=job, to_state=JobState.QUEUED, detail="File uploaded.") for job in jobs
        )
        ledger.hold_for_jobs(team=membership.team, jobs=jobs)
        queue.start_poller()
    return jobs
