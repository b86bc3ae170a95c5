"""Helpers for SWC tests: simulators on ephemeral ports, clips, and reading results back."""

import time
from collections.abc import Callable
from pathlib import Path

import av
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from PIL import ImageStat

from apps.accounts.models import Membership
from apps.billing import ledger
from apps.billing.models import LedgerEntry
from apps.jobs import queue
from apps.jobs.models import Job, JobEvent, JobState
from apps.removal.base import InputKind
from apps.removal.models import SwcServer
from apps.removal.swc import pool as swc_pool
from apps.removal.swc.client import SwcClient, SwcResult, SwcStatus
from apps.simulators.swc import SwcSimConfig, SwcSimulator
from tests.clips import mark_box

CLIP_SIZE = (144, 256)
CLIP_FPS = 12


def wait_for(condition: Callable[[], object], *, seconds: float = 10, what: str) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_final(client: SwcClient, task_id: str, *, seconds: float = 10) -> SwcResult:
    def final() -> SwcResult | None:
        result = client.result(task_id)
        return result if result.status in (SwcStatus.FINISHED, SwcStatus.ERROR) else None

    return wait_for(final, seconds=seconds, what=f"task {task_id} to end")  # type: ignore[return-value]


def mark_brightness(path: Path) -> list[float]:
    """Mean luma inside the mark's box, frame by frame: near 255 where the mark is drawn."""
    values = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            box = mark_box(index, *CLIP_SIZE, CLIP_FPS)
            values.append(ImageStat.Stat(frame.to_image().convert("L").crop(box)).mean[0])
    return values


def file_jobs(membership: Membership, clip: Path, count: int = 1) -> list[Job]:
    """Jobs for uploaded files, made the way the upload form makes them: originals in storage,
    credits held, sent on commit."""
    with transaction.atomic():
        jobs = []
        for _ in range(count):
            name = default_storage.save("originals/test/clip.mp4", File(clip.open("rb")))
            jobs.append(
                Job.objects.create(
                    team=membership.team,
                    created_by=membership.user,
                    input_kind=InputKind.FILE,
                    original_file=name,
                    original_name=clip.name,
                    original_size=clip.stat().st_size,
                    provider=swc_pool.SwcPool.name,
                    credits=settings.CREDITS_PER_VIDEO,
                    next_check_at=timezone.now(),
                )
            )
        JobEvent.objects.bulk_create(
            JobEvent(job=job, to_state=JobState.QUEUED, detail="File uploaded.") for job in jobs
        )
        ledger.hold_for_jobs(team=membership.team, jobs=jobs)
        queue.start_poller()
    return jobs


def ledger_kinds(job: Job) -> list[str]:
    return sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))


STALL_SECONDS = 3  # well above what a busy CI machine adds to a 0.3 s run


class Pool:
    """SWC simulators on ephemeral ports, and the app's `SWC_SERVERS` pointed at them."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.simulators: list[SwcSimulator] = []

    def start(self, *configs: dict[str, object]) -> list[SwcSimulator]:
        for config in configs:
            config = {"seconds_per_video": 0.2, **config}
            self.simulators.append(SwcSimulator(SwcSimConfig(**config)).start())  # type: ignore[arg-type]
        self._configure()
        return self.simulators

    def restart(self, index: int, **config: object) -> SwcSimulator:
        """The process comes back on the same address with nothing in memory."""
        old = self.simulators[index]
        old.stop()
        merged = {**vars(old.config), **config}
        self.simulators[index] = SwcSimulator(SwcSimConfig(**merged), port=old.port).start()
        return self.simulators[index]

    def probe_now(self) -> int:
        SwcServer.objects.filter(healthy=False).update(next_probe_at=timezone.now())
        return swc_pool.probe_due_servers()

    def server(self, index: int) -> SwcServer:
        return SwcServer.objects.get(url=self.simulators[index].url)

    def _configure(self) -> None:
        self.settings.SWC_SERVERS = [{"url": s.url, "authorization": ""} for s in self.simulators]

    def stop(self) -> None:
        for simulator in self.simulators:
            simulator.stop()
        swc_pool.forget_clients()


def settled_once(*jobs: Job) -> None:
    for job in jobs:
        job.refresh_from_db()
        expected = ["capture", "hold"] if job.state == JobState.SUCCEEDED else ["hold", "release"]
        assert ledger_kinds(job) == expected, job
    call_command("reconcile")  # raises on any drift


def run_until(drive_once: Callable[[], None], condition: Callable[[], bool], what: str) -> None:
    def step() -> bool:
        drive_once()
        return condition()

    wait_for(step, seconds=20, what=what)


def details(job: Job) -> list[str]:
    return list(job.events.values_list("detail", flat=True))
