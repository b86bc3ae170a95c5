"""Uploading exported videos in a real browser: drag and drop, per-file progress, refusals."""

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import av
import boto3
import pytest
from django.core.files.storage import default_storage
from moto.server import ThreadedMotoServer
from PIL import ImageStat
from playwright.sync_api import Page, expect

from apps.billing.models import EntryKind, LedgerEntry
from apps.jobs.models import Job, JobState, Upload
from apps.simulators.swc import SwcSimConfig, SwcSimulator
from tests.browser.steps import JOB_TIMEOUT_MS, balance_chip, sign_up
from tests.clips import make_clip, mark_box

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BUCKET = "unmark-uploads"


@pytest.fixture
def swc(settings) -> Iterator[SwcSimulator]:
    """One SWC simulator slow enough to watch its percentage move; the app and the worker use it."""
    simulator = SwcSimulator(SwcSimConfig(seconds_per_video=8.0)).start()
    settings.SWC_SERVERS = [{"url": simulator.url, "authorization": ""}]
    yield simulator
    simulator.stop()


@pytest.fixture
def worker_env(swc: SwcSimulator) -> dict[str, str]:
    return {"SWC_SERVERS": swc.url}


def mark_brightness(path: Path) -> list[float]:
    """Mean luma inside the mark's box, frame by frame: near 255 where the mark is drawn."""
    with av.open(str(path)) as container:
        return [
            ImageStat.Stat(
                frame.to_image().convert("L").crop(mark_box(index, frame.width, frame.height, 12))
            ).mean[0]
            for index, frame in enumerate(container.decode(video=0))
        ]


def share_marked(path: Path) -> float:
    """The share of frames where the white mark shows."""
    values = mark_brightness(path)
    return sum(value > 200 for value in values) / len(values)


def throttle_uploads(page: Page, bytes_per_second: int) -> None:
    """Slows the browser's uploads down, so progress can be watched and canceled."""
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def upload_items(page: Page):
    return page.locator(".upload-list .upload-item")


def test_two_clips_dropped_on_the_page_are_uploaded_cleaned_compared_and_downloaded(
    swc, live_stack, open_page, tmp_path: Path
):
    clips = [
        # Big enough that the browser cannot hand all of it to the socket at once.
        make_clip(tmp_path / "beach.mp4", seconds=6, width=288, height=512),
        make_clip(tmp_path / "city.mp4", seconds=5, width=288, height=512),
    ]
    page = open_page("gina")
    page.goto("/accounts/signup/")
    sign_up(page, "gina@example.com")
    expect(page.get_by_text("Sora share links stopped working when Sora closed")).to_be_visible()
    throttle_uploads(page, 8_000)

    page.locator(".drop-zone").set_input_files([str(clip) for clip in clips])

    items = upload_items(page)
    expect(items).to_have_count(2)
    expect(items.nth(0).locator(".file-name")).to_have_text("beach.mp4")
    # Each file shows its own progress, part-way first, and the form waits for them.
    expect(page.get_by_role("button", name="Waiting for uploads…")).to_be_disabled()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.upload-progress')]"
        ".some(bar => bar.value > 0 && bar.value < 100)"
    )
    for item in items.all():
        expect(item).to_contain_text("ready", timeout=30_000)
    assert Upload.objects.count() == 2

    page.get_by_label("I own these videos or have the right to edit them").check()
    page.get_by_role("button", name="Remove watermarks").click()

    expect(page.get_by_text("2 videos added")).to_be_visible()
    expect(balance_chip(page)).to_have_text("10 available · low · 20 reserved")
    jobs = Job.objects.order_by("submission_index")
    assert [job.original_name for job in jobs] == ["beach.mp4", "city.mp4"]
    assert [job.original_sha256 for job in jobs] == [
        hashlib.sha256(clip.read_bytes()).hexdigest() for clip in clips
    ]
    assert len({job.submission_id for job in jobs}) == 1

    # SWC's own percentage shows live on the job page while the server works.
    page.get_by_role("link", name="beach.mp4").click()
    expect(page.get_by_role("heading", name="Video beach.mp4")).to_be_visible()
    expect(page.locator("#job-status .badge")).to_have_text(
        re.compile(r"^Removing the watermark — [1-9]\d? %$"), timeout=JOB_TIMEOUT_MS
    )
    expect(page.locator("#job-status .badge")).to_have_text("Done", timeout=JOB_TIMEOUT_MS)

    # Before and after, side by side, each with its poster frame.
    before, after = page.locator(".before-after video").all()
    assert "/original/" in (before.get_attribute("src") or "")
    assert (before.get_attribute("poster") or "").endswith("/poster/original.jpg")
    assert (after.get_attribute("poster") or "").endswith("/poster/result.jpg")
    after.evaluate("video => { video.muted = true; return video.play(); }")
    page.wait_for_function(
        "() => document.querySelector('.before-after video.result-video').currentTime > 0"
    )
    assert after.evaluate("video => video.videoWidth") == 288

    with page.expect_download() as download:
        page.get_by_role("link", name="Download MP4").click()
    assert download.value.suggested_filename == "beach-unmarked.mp4"
    result = Path(download.value.path())
    job = Job.objects.get(original_name="beach.mp4")
    assert job.state == JobState.SUCCEEDED
    assert hashlib.sha256(result.read_bytes()).hexdigest() == job.result_sha256
    # It is what the simulator made of this very upload: the mark painted over.
    [task] = [t for t in swc.seen()["tasks"] if t["upload_sha256"] == job.original_sha256]
    assert task["downloads"] == 1
    assert result.read_bytes() != clips[0].read_bytes()
    assert share_marked(clips[0]) == 1.0
    assert share_marked(result) < 0.1
    # Back on the list, which follows the second video live: both charged, nothing reserved.
    page.get_by_role("link", name="All videos").click()
    expect(balance_chip(page)).to_have_text("10 available · low", timeout=JOB_TIMEOUT_MS)


def test_an_upload_can_be_canceled_while_it_is_sent(
    live_stack, open_page, files_provider, tmp_path: Path
):
    clip = make_clip(tmp_path / "long.mp4", seconds=6, width=288, height=512)
    page = open_page("hal")
    page.goto("/accounts/signup/")
    sign_up(page, "hal@example.com")
    throttle_uploads(page, 5_000)

    page.locator(".drop-zone").set_input_files(str(clip))
    page.wait_for_function("() => document.querySelector('.upload-progress')?.value > 0")
    upload_items(page).get_by_role("button", name="Cancel").click()

    expect(upload_items(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Remove watermarks")).to_be_enabled()
    assert Upload.objects.count() == 0


def test_a_bad_file_is_refused_with_its_reason_and_costs_nothing(
    live_stack, open_page, files_provider, tmp_path: Path
):
    not_a_video = tmp_path / "holiday.mp4"
    not_a_video.write_bytes(b"these are not the frames you are looking for" * 100)
    page = open_page("ida")
    page.goto("/accounts/signup/")
    sign_up(page, "ida@example.com")

    page.locator(".drop-zone").set_input_files(str(not_a_video))

    item = upload_items(page)
    expect(item).to_contain_text("holiday.mp4")
    expect(item).to_contain_text("This is not a video file we can read.")
    expect(page.get_by_role("button", name="Remove watermarks")).to_be_enabled()
    expect(balance_chip(page)).to_have_text("30 available")
    assert Upload.objects.count() == 0
    assert Job.objects.count() == 0


def test_without_javascript_the_form_sends_the_files_itself(
    live_stack, browser, live_server, files_provider, tmp_path: Path
):
    clip = make_clip(tmp_path / "plain.mp4", seconds=1)
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/accounts/signup/")
        sign_up(page, "jo@example.com")
        page.get_by_label("Drop your exported Sora videos here").set_input_files(str(clip))
        page.get_by_label("I own these videos or have the right to edit them").check()
        page.get_by_role("button", name="Remove watermarks").click()

        expect(page.get_by_text("1 video added")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/dashboard/$"))
        [job] = Job.objects.all()
        assert job.original_sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    finally:
        context.close()


@pytest.fixture
def bucket(live_stack, settings) -> Iterator[str]:
    """moto's S3 server on an ephemeral port as the app's storage, which browsers upload to
    directly."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "default_acl": None,
                "file_overwrite": False,
                "signature_version": "s3v4",
            },
        },
    }
    settings.SECURE_CSP = {
        **settings.SECURE_CSP,
        "connect-src": [*settings.SECURE_CSP["connect-src"], endpoint],
        "img-src": [*settings.SECURE_CSP["img-src"], endpoint],
        "media-src": [*settings.SECURE_CSP["media-src"], endpoint],
    }
    yield endpoint
    server.stop()


def test_files_go_straight_to_the_bucket_and_are_checked_before_they_are_accepted(
    bucket, open_page, files_provider, tmp_path: Path
):
    clip = make_clip(tmp_path / "direct.mp4", seconds=2)
    bad = tmp_path / "fake.mp4"
    bad.write_bytes(b"\0\0\0\x18ftypisom" + b"garbage" * 500)
    page = open_page("kim")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    page.goto("/accounts/signup/")
    sign_up(page, "kim@example.com")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))

    page.locator(".drop-zone").set_input_files([str(clip), str(bad)])

    good_item, bad_item = upload_items(page).all()
    expect(good_item).to_contain_text("ready", timeout=30_000)
    expect(bad_item).to_contain_text("This is not a video file we can read.")
    # The bytes went to the bucket, not through the app.
    assert f"POST {bucket}/{BUCKET}" in requests
    assert not [request for request in requests if request.endswith("/uploads/")]
    [upload] = Upload.objects.all()
    team = upload.team
    key = str(upload.file.name)
    assert key.startswith(f"uploads/{team.public_id}/")
    assert upload.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    # The refused object was deleted from the bucket again.
    stored = default_storage.listdir(f"uploads/{team.public_id}")[1]
    assert stored == [Path(key).name]

    page.get_by_label("I own these videos or have the right to edit them").check()
    page.get_by_role("button", name="Remove watermarks").click()

    expect(page.get_by_text("1 video added")).to_be_visible()
    expect(balance_chip(page)).to_have_text("20 available · low · 10 reserved")
    [job] = Job.objects.all()
    assert job.original_file.name == key
    assert default_storage.open(key).read() == clip.read_bytes()
    assert not [text for text in violations if "Content Security Policy" in text]


def test_staged_files_survive_a_refused_form_and_process_it_again_sends_the_file(
    live_stack, open_page, files_provider, tmp_path: Path
):
    first = make_clip(tmp_path / "first.mp4", seconds=1)
    second = make_clip(tmp_path / "second.mp4", seconds=2)
    page = open_page("kim")
    page.goto("/accounts/signup/")
    sign_up(page, "kim@example.com")
    send = page.get_by_role("button", name="Remove watermarks")

    page.locator(".drop-zone").set_input_files([str(first), str(second)])
    expect(page.locator(".upload-done")).to_have_count(2)
    send.click()  # the ownership box is not ticked

    expect(page.get_by_text("Please confirm that you own these videos")).to_be_visible()
    expect(page.locator(".upload-done")).to_have_count(2)
    page.reload()
    expect(page.locator(".upload-done")).to_have_count(2)
    page.get_by_role("button", name="Remove second.mp4").click()
    expect(page.locator(".upload-done")).to_have_count(1)
    assert [upload.name for upload in Upload.objects.all()] == ["first.mp4"]
    page.get_by_label("I own these videos or have the right to edit them").check()
    send.click()
    expect(page.get_by_text("1 video added")).to_be_visible()

    # The same file again is set aside, and pressing "Process it again" sends it.
    page.locator(".drop-zone").set_input_files(str(first))
    expect(page.locator(".upload-done")).to_have_count(1)
    send.click()
    notice = page.locator(".message-info").filter(has_text=re.compile("Already (being )?cleaned"))
    expect(notice).to_contain_text("nothing was charged")
    assert LedgerEntry.objects.filter(kind=EntryKind.HOLD).count() == 1
    notice.get_by_role("button", name="Process it again").click()

    expect(page.get_by_text("1 video added")).to_be_visible()
    assert Job.objects.count() == 2
    assert Upload.objects.count() == 0
    assert LedgerEntry.objects.filter(kind=EntryKind.HOLD).count() == 2
