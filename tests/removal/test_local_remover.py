"""Unmark's own remover as a provider, through the real pipeline: a worker runs the engine in a
process of its own over a generated Sora-like clip, any worker follows it, the clean video is
saved, signed and charged once; no mark means nothing charged; a person can cancel it; a run
that dies is noticed and the video cleaned again."""

from datetime import timedelta
from pathlib import Path

import av
import pytest
from django.conf import settings as django_settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Membership
from apps.billing import ledger
from apps.jobs import lifecycle, pipeline
from apps.jobs.models import Job, JobEvent, JobState
from apps.removal.base import InputKind, TaskState
from apps.removal.local.provider import NO_MARK, LocalRemover, cost_micros
from apps.removal.models import LocalTask
from tests.removal.engine.synthetic import ClipSpec, write_clip
from tests.swc import ledger_kinds

pytestmark = pytest.mark.django_db(transaction=True)

MARKED = ClipSpec("job", 352, 640, 1.0, "astronaut", speed=2.0, segment_seconds=5, seed=7)
UNMARKED = ClipSpec("plain", 352, 640, 1.0, "coffee", marked=False, seed=8)


@pytest.fixture(scope="module")
def marked_clip(tmp_path_factory) -> Path:
    return write_clip(MARKED, tmp_path_factory.mktemp("local") / "sora.mp4")


@pytest.fixture(scope="module")
def plain_clip(tmp_path_factory) -> Path:
    return write_clip(UNMARKED, tmp_path_factory.mktemp("local") / "plain.mp4")


@pytest.fixture
def local_stack(settings, tmp_path, media_storage, alice_membership) -> Membership:
    settings.FILE_PROVIDERS = ["local"]
    settings.REMOVER_PROCESSES = 1
    settings.POLLER_RUN_SECONDS = 0
    settings.DOWNLOAD_TEMP_DIR = str(tmp_path / "tmp")
    settings.VAR_DIR = tmp_path / "var"
    ledger.grant(team=alice_membership.team, credits=100, key="local", memo="local remover")
    return alice_membership


def local_job(membership: Membership, clip: Path) -> Job:
    """A file job as the upload form makes it: the original in storage, credits held."""
    with transaction.atomic():
        name = default_storage.save("originals/test/clip.mp4", File(clip.open("rb")))
        job = Job.objects.create(
            team=membership.team,
            created_by=membership.user,
            input_kind=InputKind.FILE,
            original_file=name,
            original_name=clip.name,
            original_size=clip.stat().st_size,
            media_info={"has_audio": True},
            provider="local",
            credits=django_settings.CREDITS_PER_VIDEO,
            next_check_at=timezone.now(),
        )
        JobEvent.objects.create(job=job, to_state=JobState.QUEUED, detail="File uploaded.")
        ledger.hold_for_jobs(team=membership.team, jobs=[job])
    return job


def streams(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]
        return {
            "size": (video.width, video.height),
            "rate": video.average_rate,
            "seconds": round(float(container.duration or 0) / av.time_base, 1),
            "audio": audio,
        }


def test_a_marked_video_is_cleaned_by_our_remover_saved_signed_and_charged_once(
    local_stack, marked_clip, drive, login, alice, tmp_path
):
    job = local_job(local_stack, marked_clip)

    drive([job], seconds=180)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, list(job.events.values_list("detail", flat=True))
    result = tmp_path / "result.mp4"
    with default_storage.open(str(job.result_file.name), "rb") as stored:
        result.write_bytes(stored.read())
    original, clean = streams(marked_clip), streams(result)
    assert clean["size"] == original["size"]
    assert clean["rate"] == original["rate"]
    assert clean["seconds"] == original["seconds"]
    assert clean["audio"] == original["audio"]  # the sound, copied as it was
    assert job.credentials is not None
    assert job.credentials["ai_generated"] is True
    [task] = LocalTask.objects.all()
    assert task.state == LocalTask.State.DONE
    assert task.frames_total > 0
    assert task.cpu_ms
    assert job.provider_cost_micros == cost_micros(task.cpu_ms)
    assert not default_storage.exists(f"removal/{task.public_id}.mp4")  # ours went with it
    assert ledger_kinds(job) == ["capture", "hold"]
    page = login(alice).get(job.get_absolute_url()).text
    assert "Cleaned by Unmark." in page


def test_a_video_without_a_mark_is_not_charged_and_says_so(local_stack, plain_clip, drive):
    job = local_job(local_stack, plain_clip)

    drive([job], seconds=180)

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.failure_message == NO_MARK
    assert job.failure_code == "local_no_mark"
    assert not job.result_file
    assert job.original_file  # the original is kept, as for any ended job
    assert ledger_kinds(job) == ["hold", "release"]


def test_a_person_cancels_a_video_while_our_remover_cleans_it(local_stack, marked_clip):
    job = local_job(local_stack, marked_clip)
    pipeline.send_job(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    task = LocalTask.objects.get(public_id=job.task_id)
    LocalTask.objects.filter(pk=task.pk).update(state=LocalTask.State.RUNNING)
    job.refresh_from_db()

    assert job.is_cancelable
    assert lifecycle.cancel_job(job)
    pipeline.stop_task(Job.objects.get(pk=job.pk))

    task.refresh_from_db()
    assert task.cancel_requested
    assert ledger_kinds(job) == ["hold", "release"]


def test_a_run_that_died_is_noticed_and_its_video_cleaned_again(local_stack, marked_clip):
    job = local_job(local_stack, marked_clip)
    pipeline.send_job(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    LocalTask.objects.filter(public_id=job.task_id).update(
        state=LocalTask.State.RUNNING, alive_at=timezone.now() - timedelta(minutes=5)
    )

    pipeline.check_job(Job.objects.get(pk=job.pk))

    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.events.values_list("detail", flat=True).last() == (
        "Its removal process stopped; cleaning it again."
    )
    assert ledger_kinds(job) == ["hold"]  # the same hold: charged once when it succeeds


def test_no_more_runs_start_than_removal_processes(local_stack, marked_clip, settings):
    remover = LocalRemover()
    assert remover.claim_starts(3) == (1, pytest.approx(timezone.now().timestamp(), abs=5))
    job = local_job(local_stack, marked_clip)
    pipeline.send_job(Job.objects.get(pk=job.pk))

    assert remover.claim_starts(3)[0] == 0  # its one process is taken
    assert remover.status(Job.objects.get(pk=job.pk).task_id).state == TaskState.PENDING
    settings.REMOVER_PROCESSES = 0
    assert LocalRemover().accepts == frozenset()  # switched off for files
