"""Unmark's own remover through a real worker cluster (`manage.py worker`, as `make run` and
production run it): an upload goes to the `local` provider, a worker process runs the engine in
a removal process of its own, and the job ends Done with a clean video that keeps the original's
sound, size, frame rate and length — or, with no mark in the video, ends without a charge."""

import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from django.core.files.storage import default_storage

from apps.billing import ledger
from apps.jobs.models import Job, JobState
from apps.removal.local.provider import NO_MARK
from apps.removal.models import LocalTask
from tests.live import WorkerProcess, free_port
from tests.removal.engine.synthetic import ClipSpec, write_clip
from tests.removal.test_local_remover import local_job, streams
from tests.swc import ledger_kinds

pytestmark = pytest.mark.django_db(transaction=True)

MARKED = ClipSpec("upload", 352, 640, 1.5, "chelsea", speed=1.5, segment_seconds=5, seed=11)
PLAIN = ClipSpec("nothing", 352, 640, 1.0, "rocket", marked=False, seed=12)


@pytest.fixture
def worker(settings, tmp_path: Path, alice_membership) -> Iterator[WorkerProcess]:
    var_dir = tmp_path / "var"
    settings.FILE_PROVIDERS = ["local"]
    settings.REMOVER_PROCESSES = 1
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": var_dir / "media"},
        },
    }
    ledger.grant(team=alice_membership.team, credits=100, key="worker", memo="local worker")
    process = WorkerProcess(
        var_dir=var_dir,
        simulator_port=free_port(),  # no Kie here
        extra_env={"FILE_PROVIDERS": "local", "REMOVER_PROCESSES": "1"},
    )
    yield process
    process.kill()  # the test is over: no need to wait for the task in hand


def wait_until_final(job: Job, worker: WorkerProcess, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Job.objects.filter(pk=job.pk).in_flight().exists():
            return
        time.sleep(0.1)
    pytest.fail(f"the job did not finish; worker log:\n{worker.output()[-3000:]}")


def test_an_upload_is_cleaned_by_our_remover_in_a_real_worker(worker, alice_membership, tmp_path):
    clip = write_clip(MARKED, tmp_path / "mine.mp4")
    job = local_job(alice_membership, clip)

    wait_until_final(job, worker)

    job.refresh_from_db()
    log = worker.output()[-3000:]
    assert job.state == JobState.SUCCEEDED, f"{job.failure_message}\n{log}"
    assert job.cleaned_by == "by Unmark"
    result = tmp_path / "clean.mp4"
    with default_storage.open(str(job.result_file.name), "rb") as stored:
        result.write_bytes(stored.read())
    original, clean = streams(clip), streams(result)
    for feature in ("size", "rate", "seconds", "audio"):
        assert clean[feature] == original[feature], feature
    with av.open(str(result)) as container:
        assert sum(1 for _ in container.decode(video=0)) == MARKED.frames
    [task] = LocalTask.objects.all()
    assert (task.state, task.frames_done > 0) == (LocalTask.State.DONE, True)
    assert ledger_kinds(job) == ["capture", "hold"]


def test_an_upload_without_a_mark_ends_without_a_charge_in_a_real_worker(
    worker, alice_membership, tmp_path
):
    job = local_job(alice_membership, write_clip(PLAIN, tmp_path / "plain.mp4"))

    wait_until_final(job, worker)

    job.refresh_from_db()
    assert (job.state, job.failure_message) == (JobState.FAILED, NO_MARK)
    assert ledger_kinds(job) == ["hold", "release"]
    assert not job.result_file
