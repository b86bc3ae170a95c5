"""Results keep the original's sound: both simulators merge it back as SoraWatermarkCleaner
does, and a result that comes back without the sound its original has is a failed job
(refunded, in plain words), not a success."""

from pathlib import Path

import av
import pytest
from django.core.files.storage import default_storage

from apps.jobs.models import JobState
from apps.removal.models import PoolTask
from tests.clips import make_clip
from tests.swc import details, file_jobs, ledger_kinds, settled_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clip_with_sound(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "beach.mp4", seconds=1, audio=True)


def sound_jobs(membership, clip: Path, count: int = 1):
    """File jobs whose upload probe found sound, as the upload form records it."""
    jobs = file_jobs(membership, clip, count=count)
    for job in jobs:
        job.media_info = {"has_audio": True, "seconds": 1.0, "width": 144, "height": 256}
        job.save(update_fields=["media_info"])
    return jobs


def stored_audio_packets(name: str, tmp_path: Path) -> int:
    copy = tmp_path / "stored.mp4"
    with default_storage.open(name, "rb") as stored:
        copy.write_bytes(stored.read())
    with av.open(str(copy)) as container:
        if not container.streams.audio:
            return 0
        return sum(1 for p in container.demux(container.streams.audio[0]) if p.size)


def test_a_video_with_sound_comes_back_from_the_pool_with_its_sound(
    pool, clip_with_sound, alice_membership, drive, tmp_path
):
    pool.start({})
    [job] = sound_jobs(alice_membership, clip_with_sound)

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, details(job)
    assert stored_audio_packets(str(job.result_file.name), tmp_path) > 20
    settled_once(job)


def test_a_result_that_lost_the_originals_sound_fails_and_is_refunded(
    pool, clip_with_sound, alice_membership, drive, media_storage, login, alice
):
    pool.start({"drops_sound": True})
    [job] = sound_jobs(alice_membership, clip_with_sound)

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED, details(job)
    assert job.failure_code == "no_audio"
    assert job.failure_message == (
        "The clean video came back without the sound the original has. It was not kept, and "
        "nothing was charged; please try again."
    )
    assert ledger_kinds(job) == ["hold", "release"]
    assert not job.result_file
    # Nothing of the soundless result was kept: only the original is stored.
    kept = [f for f in media_storage.rglob("*") if f.is_file() and "results" in f.parts]
    assert kept == []
    assert PoolTask.objects.get().outcome == PoolTask.Outcome.FINISHED
    page = login(alice).get(job.get_absolute_url()).text
    assert "without the sound the original has" in page
    settled_once(job)


def test_a_video_without_sound_is_not_asked_for_any(pool, alice_membership, drive, tmp_path):
    pool.start({"drops_sound": True})
    silent = make_clip(tmp_path / "silent.mp4", seconds=1)
    [job] = file_jobs(alice_membership, silent)
    job.media_info = {"has_audio": False}
    job.save(update_fields=["media_info"])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, details(job)
