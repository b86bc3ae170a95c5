"""One run of Unmark's remover, in the worker that took it: the original copied from storage to
a working folder, the engine (`python -m apps.removal.engine`) run over it in a process of its
own, its progress and liveness written to the task's row as it goes, the clean video put back
in storage.

A process of its own, not a thread: the memory a removal takes (about 400 MB at 704 by 1280) goes
back to the machine when it ends, a crash in a video library cannot take the worker down, and
its CPU time is its own to measure (what the video cost us). At most `REMOVER_PROCESSES` run at
once on a machine: each run holds one of that many slot locks while it works.
"""

import contextlib
import fcntl
import json
import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.removal.models import LocalTask

logger = logging.getLogger("unmark.removal")

CHUNK_BYTES = 1024 * 1024
# The engine reports at least twice a second while it works; this much silence means it hangs.
SILENT_SECONDS = 120
# How often the run writes its progress (and that it is alive) to the task's row.
WRITE_EVERY_SECONDS = 1.0
EXIT_DONE, EXIT_NO_MARK, EXIT_STOPPED = 0, 2, 3


def run(task_pk: int) -> None:
    """Runs the task's removal if a removal process of this machine is free and nobody else
    runs it (the row is claimed with a conditional UPDATE); otherwise leaves it waiting, for
    the provider to hand out again."""
    with _free_slot() as slot:
        if slot is None:
            return
        now = timezone.now()
        claimed = LocalTask.objects.filter(
            pk=task_pk, state=LocalTask.State.WAITING, cancel_requested=False
        ).update(
            state=LocalTask.State.RUNNING,
            host=socket.gethostname()[:100],
            started_at=now,
            alive_at=now,
        )
        if claimed:
            _run_claimed(LocalTask.objects.get(pk=task_pk))


@contextlib.contextmanager
def _free_slot() -> Iterator[int | None]:
    folder = Path(settings.VAR_DIR) / "removal-slots"
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(int(settings.REMOVER_PROCESSES)):
        with (folder / f"slot-{slot}.lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            yield slot
            return  # the lock goes with the file
    yield None


def _run_claimed(task: LocalTask) -> None:
    work = Path(settings.DOWNLOAD_TEMP_DIR) / f"removal-{task.public_id}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        source, result = work / "original.mp4", work / "clean.mp4"
        try:
            _copy_from_storage(task.input_name, source, task)
        except (FileNotFoundError, OSError) as exc:
            _end(task, LocalTask.State.FAILED, failure=f"the original could not be read ({exc})")
            return
        state, fields = _remove(task, source, result, work)
        if state != LocalTask.State.DONE:
            _end(task, state, **fields)
            return
        with result.open("rb") as clean:
            name = default_storage.save(f"removal/{task.public_id}.mp4", File(clean))
        if not _end(task, state, result_name=name, **fields):
            default_storage.delete(name)  # its job no longer wants it (canceled, or gone)
            _end(task, LocalTask.State.CANCELED, cpu_ms=fields["cpu_ms"], only_if_wanted=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _copy_from_storage(name: str, dest: Path, task: LocalTask) -> None:
    with default_storage.open(name, "rb") as stored, dest.open("wb") as out:
        while chunk := stored.read(CHUNK_BYTES):
            out.write(chunk)
            _alive(task)


def _remove(task: LocalTask, source: Path, result: Path, work: Path) -> tuple[str, dict[str, Any]]:
    """Runs the engine over `source`; returns the task's end state and what to record."""
    errors = work / "engine.log"
    with errors.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and engine)
            [sys.executable, "-m", "apps.removal.engine", str(source), str(result), "--progress"],
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        assert process.stdout is not None
        report, stopped = _follow(task, process, process.stdout)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    cpu_ms = int((usage.ru_utime + usage.ru_stime) * 1000)
    code = process.returncode
    logger.info("removal ended", extra={"task": task.public_id, "exit": code, "cpu_ms": cpu_ms})
    if code == EXIT_DONE and report is not None:
        return LocalTask.State.DONE, {"cpu_ms": cpu_ms, "report": report}
    if code == EXIT_NO_MARK:
        return LocalTask.State.NO_MARK, {"cpu_ms": cpu_ms}
    if code == EXIT_STOPPED or stopped:
        return LocalTask.State.CANCELED, {"cpu_ms": cpu_ms}
    reason = errors.read_text(errors="replace").strip().splitlines()[-1:] or ["no reason given"]
    return LocalTask.State.FAILED, {"cpu_ms": cpu_ms, "failure": reason[0][:300]}


def _follow(
    task: LocalTask, process: subprocess.Popen[bytes], lines: IO[bytes]
) -> tuple[dict[str, Any] | None, bool]:
    """Reads the engine's lines until it ends: writes its progress about once a second, stops
    it when the task is canceled (or when it falls silent). Returns its report and whether it
    was stopped."""
    report: dict[str, Any] | None = None
    stopped = False
    written = heard = time.monotonic()
    progress: dict[str, int] = {}
    while True:
        ready, _, _ = select.select([lines], [], [], WRITE_EVERY_SECONDS)
        if ready:
            line = lines.readline()
            if not line:
                _alive(
                    task, **progress
                )  # the last count, which a short video sends within a second
                return report, stopped
            heard = time.monotonic()
            kind, _, rest = line.decode(errors="replace").strip().partition(" ")
            if kind == "report":
                report = json.loads(rest)
            elif kind == "progress":
                done, total = (int(n) for n in rest.split())
                progress = {"frames_done": done, "frames_total": total}
        elif time.monotonic() - heard > SILENT_SECONDS:
            process.kill()
            stopped = True
        if time.monotonic() - written >= WRITE_EVERY_SECONDS:
            written = time.monotonic()
            _alive(task, **progress)
            if not stopped and _cancel_requested(task):
                process.terminate()  # the engine stops at its next frame and leaves nothing
                stopped = True


def _alive(task: LocalTask, **progress: int) -> None:
    LocalTask.objects.filter(pk=task.pk).update(alive_at=timezone.now(), **progress)


def _cancel_requested(task: LocalTask) -> bool:
    return bool(
        LocalTask.objects.filter(pk=task.pk).values_list("cancel_requested", flat=True).first()
    )


def _end(task: LocalTask, state: str, *, only_if_wanted: bool = True, **fields: Any) -> bool:
    """Records how the run ended; with `only_if_wanted`, only while its job still wants it."""
    running = LocalTask.objects.filter(pk=task.pk, state=LocalTask.State.RUNNING)
    if only_if_wanted:
        running = running.filter(cancel_requested=False)
    now = timezone.now()
    return bool(running.update(state=state, ended_at=now, alive_at=now, **fields))
