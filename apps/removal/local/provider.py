"""Unmark's remover as the pipeline sees it: a provider that takes files and runs on our own
worker machines, `REMOVER_PROCESSES` removals at a time on each.

Starting a task only records it (`LocalTask`) and hands its run to a worker
(`tasks.run_removal`), so the worker that sends it never waits; any worker then follows it
from its row: frames done, whether its run is alive, what came of it. The clean video stays
in our storage until the job has saved it (`open_result`), and goes when the job forgets it.
"""

import time
from datetime import timedelta
from typing import IO

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps import taskqueue
from apps.removal.base import (
    InputKind,
    PermanentError,
    RemovalProvider,
    SendAgain,
    TaskInput,
    TaskState,
    TaskStatus,
    room_within_overflow_wait,
)
from apps.removal.models import LocalTask

NO_MARK = "No Sora watermark found in this video — nothing was charged."
# A waiting task whose run has not started this long after it was handed out is handed out
# again (its message was lost, or every removal process of the machine that got it was busy).
RUN_AGAIN_SECONDS = 5.0


def busy() -> QuerySet[LocalTask]:
    """Tasks that hold a removal process (or are about to): waiting or running, and alive."""
    stale = timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    return LocalTask.objects.filter(
        state__in=(LocalTask.State.WAITING, LocalTask.State.RUNNING), alive_at__gte=stale
    )


def machines_running() -> int:
    """Worker machines heard from lately (each runs `REMOVER_PROCESSES`); one at least, so a
    cluster that has not beaten yet still gets work."""
    return max(1, len({cluster["host"] for cluster in taskqueue.clusters()}))


def capacity() -> int:
    return int(settings.REMOVER_PROCESSES) * machines_running()


def cost_micros(cpu_ms: int) -> int:
    """CPU time at `REMOVER_PRICE_PER_CPU_HOUR`, in millionths of a dollar (rounded half up)."""
    return (cpu_ms * settings.REMOVER_PRICE_PER_CPU_HOUR_MICROS + 1_800_000) // 3_600_000


def run_later(task: LocalTask) -> None:
    taskqueue.enqueue("apps.removal.tasks.run_removal", task.pk)


class LocalRemover(RemovalProvider):
    name = "local"
    label = "Unmark's remover"
    cleaned_by = "by Unmark"
    waits_for = "our remover"
    software_agent = "Unmark remover"
    # Our own runs: followed closely, like our own machines.
    poll_seconds = 1.0
    # A person may cancel a video it is cleaning: its run stops at the next frame.
    stops_tasks = True

    def __init__(self) -> None:
        self.accepts = frozenset({InputKind.FILE}) if settings.REMOVER_PROCESSES else frozenset()

    def start(self, task: TaskInput) -> str:
        if not task.storage_name:
            raise PermanentError("Unmark's remover takes only uploaded files.")
        if busy().count() >= capacity():
            # Full since the dispatcher counted: it goes out again in its turn.
            raise SendAgain("Every removal process is busy.")
        local = LocalTask.objects.create(reference=task.reference, input_name=task.storage_name)
        run_later(local)
        return str(local.public_id)

    def status(self, task_id: str) -> TaskStatus:
        local = LocalTask.objects.filter(public_id=task_id).first()
        if local is None:
            return _lost(task_id, "Its removal was lost; cleaning it again.")
        now = timezone.now()
        quiet = (now - local.alive_at).total_seconds()
        if local.state == LocalTask.State.WAITING:
            if quiet > settings.JOB_LEASE_SECONDS:
                return _lost(task_id, "Its removal never started; cleaning it again.")
            if quiet > RUN_AGAIN_SECONDS:
                LocalTask.objects.filter(pk=local.pk, state=LocalTask.State.WAITING).update(
                    alive_at=now
                )
                run_later(local)
            return TaskStatus(task_id, TaskState.PENDING, progress=0)
        if local.state == LocalTask.State.RUNNING:
            if quiet > settings.JOB_LEASE_SECONDS:
                return _lost(task_id, "Its removal process stopped; cleaning it again.")
            return TaskStatus(
                task_id, TaskState.RUNNING, progress=local.progress, machine=local.host
            )
        cost = cost_micros(local.cpu_ms) if local.cpu_ms is not None else None
        if local.state == LocalTask.State.DONE:
            return TaskStatus(
                task_id,
                TaskState.SUCCEEDED,
                result_urls=(f"local:{task_id}",),
                cost_time_ms=local.cpu_ms,
                cost_micros=cost,
                progress=100,
                machine=local.host,
            )
        if local.state == LocalTask.State.NO_MARK:
            return TaskStatus(
                task_id,
                TaskState.FAILED,
                failure_code="no_mark",
                failure_message=NO_MARK,
                failure_is_whole=True,
                cost_micros=cost,
            )
        return TaskStatus(
            task_id,
            TaskState.FAILED,
            failure_code=local.state,
            failure_message=local.failure or "the removal failed",
            cost_micros=cost,
        )

    def cancel(self, task_id: str) -> None:
        LocalTask.objects.filter(public_id=task_id).update(cancel_requested=True)

    def forget(self, task_id: str) -> None:
        if not task_id:
            return
        local = LocalTask.objects.filter(public_id=task_id).first()
        if local is None:
            return
        # Its run, if any is left, stops at its next frame; its clean copy has been saved (or
        # is no longer wanted), once the job's move that forgets it commits.
        LocalTask.objects.filter(pk=local.pk).update(cancel_requested=True, result_name="")
        if name := local.result_name:
            transaction.on_commit(lambda: default_storage.delete(name))

    def open_result(self, task_id: str) -> IO[bytes] | None:
        name = (
            LocalTask.objects.filter(public_id=task_id, state=LocalTask.State.DONE)
            .values_list("result_name", flat=True)
            .first()
        )
        return default_storage.open(name, "rb") if name else None

    def claim_starts(self, wanted: int, *, in_hand: int = 0) -> tuple[int, float]:
        free = capacity() - busy().count() - in_hand
        return max(0, min(wanted, free)), time.time()

    def seconds_until_start(self, *, in_hand: int = 0) -> float:
        return 0.0 if capacity() > busy().count() + in_hand else 1.0

    def may_wait(self, *, sent_now: int) -> int:
        # A few processes on CPU: a file that overflowed from the pool waits for them only
        # while it would start soon, else it goes on to the next provider (Replicate).
        return room_within_overflow_wait(
            machines=capacity(),
            busy=busy().count() + sent_now,
            seconds_per_video=settings.REMOVER_SECONDS_PER_VIDEO,
        )

    def starts_per_second(self) -> float:
        return max(capacity(), 1) / settings.REMOVER_SECONDS_PER_VIDEO


def _lost(task_id: str, reason: str) -> TaskStatus:
    return TaskStatus(task_id, TaskState.LOST, failure_message=reason)
