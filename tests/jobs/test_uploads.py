"""Uploading videos: the hostile-file battery, batches, names, already-cleaned files, retention.

Every refusal is checked for its message and for what it must not leave behind: no job, no
upload, nothing stored, not a credit held.
"""

import hashlib
import io
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.http.multipartparser import MultiPartParser
from django.test import Client, RequestFactory
from django.utils import timezone
from django.utils.crypto import get_random_string

from apps.accounts.models import Membership
from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry
from apps.jobs import dispatcher, lifecycle, submission
from apps.jobs.models import Job, JobState, Upload
from apps.jobs.uploads import CappedUploadHandler, display_name, expire_originals
from apps.removal.base import InputKind
from tests.threads import run_at_once
from tests.uploads import (
    at,
    audio_only_bytes,
    clip_bytes,
    faststart_clip_bytes,
    png_bytes,
    post_videos,
    video_file,
)

GOOD_LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"


@pytest.fixture
def uploads_stack(settings, media_storage: Path, tmp_path: Path, files_provider: None) -> Path:
    """Local storage in a fresh folder, temporary files in another, a provider for files."""
    settings.DOWNLOAD_TEMP_DIR = settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    return media_storage


def personal(user) -> Membership:
    return Membership.objects.select_related("team", "user").get(user=user, team__is_personal=True)


def stored_files(media: Path) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def assert_nothing_kept(alice, media: Path, balance_before: int) -> None:
    assert Job.objects.count() == 0
    assert Upload.objects.count() == 0
    assert stored_files(media) == []
    assert ledger.available_credits(personal(alice).team) == balance_before


# --- Accepted files ------------------------------------------------------------------------------
def test_two_clips_become_two_file_jobs_held_together(login, alice, uploads_stack, tmp_path):
    team = personal(alice).team
    before = ledger.available_credits(team)
    first, second = clip_bytes(tmp_path, seconds=1), clip_bytes(tmp_path, seconds=2)

    response = post_videos(login(alice), alice, [("first.mp4", first), ("second.mov", second)])

    assert response.status_code == 302
    jobs = list(Job.objects.order_by("submission_index"))
    assert [job.original_name for job in jobs] == ["first.mp4", "second.mov"]
    assert {job.input_kind for job in jobs} == {InputKind.FILE}
    assert [job.original_sha256 for job in jobs] == [
        hashlib.sha256(first).hexdigest(),
        hashlib.sha256(second).hexdigest(),
    ]
    assert jobs[0].submission_id == jobs[1].submission_id is not None
    assert jobs[1].media_info["seconds"] == 2.0
    assert jobs[1].media_info["codec"] == "h264"
    assert default_storage.open(str(jobs[0].original_file.name)).read() == first
    assert default_storage.open(str(jobs[0].original_poster.name)).read(3) == b"\xff\xd8\xff"
    assert ledger.available_credits(team) == before - 20
    assert Upload.objects.count() == 0


def test_a_file_uploaded_by_the_page_script_is_submitted_by_its_id(
    login, alice, uploads_stack, tmp_path
):
    client = login(alice)
    answer = client.post(
        at(alice, "jobs:upload"), {"file": video_file("mine.mp4", clip_bytes(tmp_path))}
    )
    assert answer.status_code == 201
    assert answer.json()["name"] == "mine.mp4"

    response = client.post(
        at(alice, "jobs:submit"),
        {"uploads": [answer.json()["id"]], "owns_videos": "on", "submission": str(uuid.uuid4())},
    )

    assert response.status_code == 302
    [job] = Job.objects.all()
    assert job.original_name == "mine.mp4"
    assert Upload.objects.count() == 0


def test_an_upload_removed_from_the_batch_is_deleted_with_its_files(
    login, alice, uploads_stack, tmp_path
):
    client = login(alice)
    data = client.post(
        at(alice, "jobs:upload"), {"file": video_file("a.mp4", clip_bytes(tmp_path))}
    ).json()

    assert client.post(data["discard_url"]).status_code == 204

    assert Upload.objects.count() == 0
    assert stored_files(uploads_stack) == []


def test_another_teams_upload_cannot_be_submitted_or_removed(
    login, alice, charlie, uploads_stack, tmp_path
):
    data = (
        login(alice)
        .post(at(alice, "jobs:upload"), {"file": video_file("a.mp4", clip_bytes(tmp_path))})
        .json()
    )
    client = login(charlie)

    response = client.post(
        at(charlie, "jobs:submit"),
        {"uploads": [data["id"]], "owns_videos": "on", "submission": str(uuid.uuid4())},
    )

    assert "already submitted or removed" in response.text
    assert client.post(data["discard_url"]).status_code == 404
    assert Job.objects.count() == 0
    assert Upload.objects.count() == 1


# --- The hostile-file battery --------------------------------------------------------------------
def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


HOSTILE = {
    "zero bytes": (lambda tmp: b"", "This file is empty (0 bytes)."),
    "text named .mp4": (lambda tmp: b"not a video " * 500, "This is not a video file we can read."),
    "a web page behind an MP4 header": (
        lambda tmp: b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2" + b"<!DOCTYPE html><p>hi</p>" * 50,
        "This is not a video file we can read.",
    ),
    "cut off before its index": (
        lambda tmp: truncated(clip_bytes(tmp, seconds=2)),
        "This video is incomplete: the file was cut off before its end.",
    ),
    "cut off after its index": (
        lambda tmp: truncated(faststart_clip_bytes(tmp)),
        "This video is incomplete: the file was cut off before its end.",
    ),
    "sound only": (audio_only_bytes, "This file has only sound, no picture."),
    "a still picture": (lambda tmp: png_bytes(), "This is a still picture, not a video."),
    "one frame": (
        lambda tmp: clip_bytes(tmp, seconds=0.01),
        "This is a still picture, not a video.",
    ),
    "too long": (
        lambda tmp: clip_bytes(tmp, seconds=3, fps=4),
        "This video is 3 seconds long; videos up to 2 seconds are accepted.",
    ),
    "too large a picture": (
        lambda tmp: clip_bytes(tmp, width=320, height=96, fps=4),
        "This video is 320 by 96 pixels; videos up to 256 pixels on their longest side",
    ),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_file_is_refused_with_its_reason_and_nothing_kept_or_held(
    kind, login, alice, uploads_stack, tmp_path, settings
):
    settings.UPLOAD_MAX_SECONDS, settings.UPLOAD_MAX_SIDE = 2, 256
    make, message = HOSTILE[kind]
    before = ledger.available_credits(personal(alice).team)

    response = post_videos(login(alice), alice, [("holiday.mp4", make(tmp_path))])

    assert response.status_code == 200
    assert "holiday.mp4" in response.text
    assert message in response.text
    assert_nothing_kept(alice, uploads_stack, before)


def test_the_page_script_gets_the_same_refusal_as_json(login, alice, uploads_stack):
    response = login(alice).post(
        at(alice, "jobs:upload"), {"file": video_file("x.mp4", png_bytes())}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "This is a still picture, not a video."}
    assert Upload.objects.count() == 0


def test_a_refused_file_does_not_stop_the_good_ones_of_its_batch(
    login, alice, uploads_stack, tmp_path
):
    response = post_videos(
        login(alice),
        alice,
        [("good.mp4", clip_bytes(tmp_path)), ("bad.mp4", b"")],
        HTTP_HX_REQUEST="true",
    )

    assert "1 video added" in response.text
    assert "This file is empty (0 bytes)." in response.text
    assert [job.original_name for job in Job.objects.all()] == ["good.mp4"]


def test_a_file_over_the_size_cap_stops_the_upload_while_it_arrives(settings, tmp_path):
    settings.UPLOAD_MAX_BYTES = 100_000
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    boundary = "BoUnDaRy"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="videos"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    body = head + b"\0" * 2_000_000 + f"\r\n--{boundary}--\r\n".encode()
    stream = CountingStream(body)
    request = RequestFactory().post("/")
    meta = {
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
        "CONTENT_LENGTH": str(len(body)),
    }

    _, files = MultiPartParser(meta, stream, [CappedUploadHandler(request)]).parse()

    assert len(files) == 0
    # It stopped within one read past the cap, out of 2 MB sent.
    assert stream.consumed < settings.UPLOAD_MAX_BYTES + 3 * CappedUploadHandler.chunk_size
    assert list(tmp_path.iterdir()) == []
    [refusal] = request.upload_refusals  # type: ignore[attr-defined]
    assert refusal.message.startswith("big.mp4: This file is larger than the 98 KB")


def test_a_request_larger_than_a_whole_batch_is_refused_before_its_files_are_read(
    settings, tmp_path
):
    settings.UPLOAD_MAX_BYTES, settings.UPLOAD_MAX_FILES = 1_000, 1
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    boundary = "BoUnDaRy"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
            f"token\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="videos"; filename="a.mp4"\r\n\r\n'
        ).encode()
        + b"\0" * 1_100_000
        + f"\r\n--{boundary}--\r\n".encode()
    )
    stream = CountingStream(body)
    request = RequestFactory().post("/")
    meta = {
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
        "CONTENT_LENGTH": str(len(body)),
    }

    fields, files = MultiPartParser(meta, stream, [CappedUploadHandler(request)]).parse()

    assert fields["csrfmiddlewaretoken"] == "token"  # so the person gets an answer, not a 403
    assert len(files) == 0
    assert stream.consumed < 3 * CappedUploadHandler.chunk_size
    assert list(tmp_path.iterdir()) == []
    [refusal] = request.upload_refusals  # type: ignore[attr-defined]
    assert refusal.name == ""
    assert (
        "larger together than a whole batch may be (up to 1 files of 1,000 bytes each)"
        in refusal.message
    )


class CountingStream(io.BytesIO):
    @property
    def consumed(self) -> int:
        return self.tell()


def test_a_file_over_the_size_cap_refuses_the_batch_and_holds_nothing(
    login, alice, uploads_stack, tmp_path, settings
):
    settings.UPLOAD_MAX_BYTES = 20_000
    before = ledger.available_credits(personal(alice).team)
    small = clip_bytes(tmp_path, seconds=0.5, fps=4)
    assert len(small) < 20_000

    response = post_videos(
        login(alice), alice, [("small.mp4", small), ("huge.mp4", b"\1" * 60_000)]
    )

    assert "huge.mp4: This file is larger than the 20 KB we accept." in response.text
    assert "nothing was submitted" in response.text
    assert_nothing_kept(alice, uploads_stack, before)


def test_twenty_one_files_in_one_batch_are_refused_and_nothing_held(
    login, alice, uploads_stack, tmp_path
):
    before = ledger.available_credits(personal(alice).team)
    clip = clip_bytes(tmp_path, seconds=0.5, fps=4)

    response = post_videos(login(alice), alice, [(f"clip{n}.mp4", clip) for n in range(21)])

    assert "Up to 20 files can be sent at once, and these are more." in response.text
    assert_nothing_kept(alice, uploads_stack, before)


def test_the_same_file_twice_in_a_batch_is_cleaned_and_charged_once(
    login, alice, uploads_stack, tmp_path
):
    team = personal(alice).team
    before = ledger.available_credits(team)
    clip = clip_bytes(tmp_path)

    response = post_videos(
        login(alice), alice, [("a.mp4", clip), ("copy of a.mp4", clip)], HTTP_HX_REQUEST="true"
    )

    assert "The same video as a.mp4: it is cleaned once." in response.text
    [job] = Job.objects.all()
    assert job.original_name == "a.mp4"
    assert ledger.available_credits(team) == before - 10
    assert len([name for name in stored_files(uploads_stack) if name.endswith(".mp4")]) == 1


HOSTILE_NAMES = [
    "../../../../etc/passwd.mp4",
    "..\\..\\windows\\system32\\clip.mp4",
    "evil\x00name\r\n\x1b[31m.mp4",
    "x" * 300 + ".mp4",
    "harmless\u202egpj.mp4",
    "\u200b\u2066.mp4",
]


def test_hostile_names_are_shown_cleaned_and_never_reach_storage(
    login, alice, uploads_stack, tmp_path
):
    ledger.grant(team=personal(alice).team, credits=100, key="test:names", memo="For the test")
    clips = [clip_bytes(tmp_path, seconds=0.5, fps=4 + n) for n in range(len(HOSTILE_NAMES))]

    response = post_videos(login(alice), alice, list(zip(HOSTILE_NAMES, clips, strict=True)))

    assert response.status_code == 302
    team = personal(alice).team
    for job in Job.objects.all():
        stored = str(job.original_file.name)
        assert stored.startswith(f"uploads/{team.public_id}/")
        assert len(Path(stored).name) == len(uuid.uuid4().hex) + len(".mp4")
        name = job.original_name
        assert len(name) <= 120
        assert not any(ch in name for ch in "/\\\x00\r\n\x1b\u202e\u200b\u2066")
    names = {job.original_name for job in Job.objects.all()}
    assert "passwd.mp4" in names
    assert "harmlessgpj.mp4" in names
    assert all(".." not in name for name in stored_files(uploads_stack))


def test_display_names_keep_what_people_recognise():
    assert display_name("My holiday (final).MP4") == "My holiday (final).MP4"
    assert display_name("a/b/c.mp4") == "c.mp4"
    assert display_name("\u202e\u200b") == "video"
    long = display_name("é" * 300 + ".mp4")
    assert len(long) == 120
    assert long.endswith("….mp4")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_uploads_at_once_are_both_kept_apart(login, alice, uploads_stack, tmp_path):
    clips = [clip_bytes(tmp_path, seconds=1), clip_bytes(tmp_path, seconds=2)]
    answers: list[int] = []

    def upload(data: bytes) -> None:
        client = login(alice)
        answers.append(
            client.post(at(alice, "jobs:upload"), {"file": video_file("a.mp4", data)}).status_code
        )

    threads = [threading.Thread(target=upload, args=(clip,)) for clip in clips]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [201, 201]
    uploads = list(Upload.objects.all())
    assert {upload.sha256 for upload in uploads} == {hashlib.sha256(c).hexdigest() for c in clips}
    assert len({upload.file.name for upload in uploads}) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_upload_sent_in_several_forms_at_once_becomes_one_job(
    login, alice, uploads_stack, tmp_path
):
    client = login(alice)
    data = client.post(
        at(alice, "jobs:upload"), {"file": video_file("a.mp4", clip_bytes(tmp_path))}
    ).json()
    upload = Upload.objects.get()
    membership = personal(alice)

    def send(i: int) -> list[Job]:
        return submission.submit_jobs(
            membership=membership, uploads=[upload], submission=uuid.uuid4()
        )

    results = run_at_once(6, send)

    made = [r for r in results if isinstance(r, list)]
    gone = [r for r in results if isinstance(r, submission.UploadGone)]
    assert (len(made), len(gone)) == (1, 5), results
    [job] = Job.objects.all()
    assert job.original_sha256 == upload.sha256
    assert LedgerEntry.objects.filter(kind=EntryKind.HOLD).count() == 1
    assert Upload.objects.count() == 0
    assert data["id"] == str(upload.public_id)
    call_command("reconcile")


# --- Already cleaned: one mechanism for links and files -----------------------------------------
def finish(job: Job) -> None:
    """Moves a job to success the way the pipeline does, with a stored result."""
    job.move(JobState.SUBMITTED, task_id=f"task-{job.pk}")
    job.move(JobState.DOWNLOADING, result_url="https://example.com/out.mp4")
    from django.core.files.base import ContentFile

    name = default_storage.save(f"results/{job.public_id}.mp4", ContentFile(b"result"))
    lifecycle.succeed_job(job, name=name, size=6, sha256="0" * 64)


def test_a_file_this_team_already_cleaned_links_to_the_result_instead_of_charging(
    login, alice, uploads_stack, tmp_path
):
    team = personal(alice).team
    client = login(alice)
    clip = clip_bytes(tmp_path)
    post_videos(client, alice, [("first.mp4", clip)])
    [earlier] = Job.objects.all()
    finish(earlier)
    before = ledger.available_credits(team)

    response = post_videos(client, alice, [("renamed.mp4", clip)])

    assert "Already cleaned" in response.text
    assert earlier.get_absolute_url() in response.text
    assert Job.objects.count() == 1
    assert ledger.available_credits(team) == before
    [waiting] = Upload.objects.all()

    again = client.post(
        at(alice, "jobs:submit"),
        {
            "uploads": [str(waiting.public_id)],
            "again": "on",
            "owns_videos": "on",
            "submission": str(uuid.uuid4()),
        },
    )

    assert again.status_code == 302
    assert Job.objects.count() == 2
    assert ledger.available_credits(team) == before - 10


def test_a_link_this_team_already_cleaned_links_to_the_result_instead_of_charging(
    login, alice, uploads_stack
):
    team = personal(alice).team
    [earlier] = submission.submit_jobs(membership=personal(alice), links=[GOOD_LINK])
    finish(earlier)
    before = ledger.available_credits(team)
    client = login(alice)

    response = client.post(
        at(alice, "jobs:submit"),
        {"links": GOOD_LINK, "owns_videos": "on", "submission": str(uuid.uuid4())},
    )

    assert "Already cleaned" in response.text
    assert earlier.get_absolute_url() in response.text
    assert "Process it again" in response.text
    assert ledger.available_credits(team) == before

    client.post(
        at(alice, "jobs:submit"),
        {"links": GOOD_LINK, "again": "on", "owns_videos": "on", "submission": str(uuid.uuid4())},
    )

    assert Job.objects.count() == 2
    assert ledger.available_credits(team) == before - 10


def test_another_teams_cleaned_file_is_not_a_reason_to_skip(
    login, alice, charlie, uploads_stack, tmp_path
):
    clip = clip_bytes(tmp_path)
    post_videos(login(alice), alice, [("a.mp4", clip)])
    finish(Job.objects.get())

    response = post_videos(login(charlie), charlie, [("a.mp4", clip)])

    assert response.status_code == 302
    assert Job.objects.filter(team=personal(charlie).team).count() == 1


# --- No provider takes files ---------------------------------------------------------------------
def test_files_are_refused_at_once_when_no_provider_takes_them(
    login, alice, media_storage, tmp_path, settings
):
    settings.SWC_SERVERS = []
    settings.REMOVER_PROCESSES = 0  # our own remover switched off for files
    settings.REPLICATE_API_TOKEN = ""  # Replicate is optional capacity: not set up either
    before = ledger.available_credits(personal(alice).team)
    client = login(alice)

    response = post_videos(client, alice, [("a.mp4", clip_bytes(tmp_path))])
    script = client.post(at(alice, "jobs:upload"), {"file": video_file("a.mp4", b"x")})

    assert "Cleaning uploaded files is not available right now" in response.text
    assert script.status_code == 409
    assert_nothing_kept(alice, media_storage, before)


# --- Retention -----------------------------------------------------------------------------------
def test_originals_are_deleted_a_day_after_their_job_ends_and_unsubmitted_uploads_too(
    login, alice, uploads_stack, tmp_path
):
    client = login(alice)
    post_videos(client, alice, [("done.mp4", clip_bytes(tmp_path, seconds=1))])
    [job] = Job.objects.all()
    finish(job)
    client.post(at(alice, "jobs:upload"), {"file": video_file("never.mp4", clip_bytes(tmp_path))})
    assert expire_originals() == 0

    day_ago = timezone.now() - timedelta(hours=24, minutes=1)
    Job.objects.update(finished_at=day_ago)
    Upload.objects.update(created_at=day_ago)
    assert expire_originals() == 2

    job.refresh_from_db()
    assert job.original_file.name == ""
    assert job.original_poster.name  # the "before" frame stays with the kept result
    assert Upload.objects.count() == 0
    left = stored_files(uploads_stack)
    assert [name for name in left if name.startswith("uploads/")] == []
    assert job.result_file.name in left


def test_an_expired_result_takes_its_posters_along(login, alice, uploads_stack, tmp_path):
    post_videos(login(alice), alice, [("a.mp4", clip_bytes(tmp_path))])
    [job] = Job.objects.all()
    finish(job)
    job.refresh_from_db()
    poster = str(job.original_poster.name)
    assert poster in stored_files(uploads_stack)

    Job.objects.update(expires_at=timezone.now())
    dispatcher.expire_results()

    job.refresh_from_db()
    assert job.state == JobState.EXPIRED
    assert (job.result_file.name, job.original_poster.name) == ("", "")
    assert poster not in stored_files(uploads_stack)


def test_a_retried_file_job_takes_its_original_along(login, alice, uploads_stack, tmp_path):
    post_videos(login(alice), alice, [("a.mp4", clip_bytes(tmp_path))])
    [job] = Job.objects.all()
    lifecycle.fail_job(job, code="test", message="Failed for the test.")
    original = job.original_file.name

    retry = submission.retry_job(membership=personal(alice), job=job)

    job.refresh_from_db()
    assert retry.original_file.name == original
    assert job.original_file.name == ""
    assert retry.input_kind == InputKind.FILE
    assert Upload.objects.count() == 0


# --- The job page: before and after --------------------------------------------------------------
def test_the_job_page_shows_before_and_after_and_outsiders_get_404(
    login, alice, charlie, uploads_stack, tmp_path
):
    clip = clip_bytes(tmp_path)
    post_videos(login(alice), alice, [("a.mp4", clip)])
    [job] = Job.objects.all()
    finish(job)
    client = login(alice)

    page = client.get(job.get_absolute_url()).text
    original = client.get(at(alice, "jobs:original", job.public_id))
    poster = client.get(at(alice, "jobs:poster", job.public_id, "original"))

    assert "Before" in page
    assert "After" in page
    assert at(alice, "jobs:original", job.public_id) in page
    assert b"".join(original.streaming_content) == clip
    assert b"".join(poster.streaming_content)[:3] == b"\xff\xd8\xff"
    outsider = login(charlie)
    assert outsider.get(at(alice, "jobs:original", job.public_id)).status_code == 404
    assert outsider.get(at(charlie, "jobs:original", job.public_id)).status_code == 404
    poster_url = at(alice, "jobs:poster", job.public_id, "original")
    assert outsider.get(poster_url).status_code == 404


def test_an_outsider_is_refused_before_a_byte_of_the_upload_is_read(
    alice, charlie, uploads_stack, settings
):
    client = Client(enforce_csrf_checks=True)  # as browsers meet it: the check reads the body
    client.force_login(charlie)
    token = get_random_string(32)
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    large = SimpleUploadedFile("large.mp4", b"\0" * 5_000_000, content_type="video/mp4")

    response = client.post(
        at(alice, "jobs:upload"), {"file": large}, headers={"X-CSRFToken": token}
    )

    assert response.status_code == 404
    assert response.wsgi_request.META["wsgi.input"].read_started is False
    assert list(Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir()) == []
    assert stored_files(uploads_stack) == []
    assert Upload.objects.count() == 0


def test_a_member_still_needs_the_csrf_token_to_upload(alice, uploads_stack, tmp_path):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post(
        at(alice, "jobs:upload"), {"file": video_file("a.mp4", clip_bytes(tmp_path))}
    )

    assert response.status_code == 403
    assert Upload.objects.count() == 0
