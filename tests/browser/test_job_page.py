"""A video's page and the list in Chromium, at a desk and on a phone: the before and after play
together and a divider compares one frame (two plain players without JavaScript), relative
times stay true while a page sits open, and the waiting words agree with the badge. Every page
passes axe, logs no console error and breaks no Content-Security-Policy rule."""

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize, expect
from pytest_django.live_server_helper import LiveServer

from apps.accounts.models import Team
from apps.jobs.media import poster_jpeg, probe_video
from apps.jobs.models import Job, JobState
from apps.removal.base import InputKind
from apps.simulators.mark_painter import paint_over_marks
from tests.browser.conftest import ARTIFACTS, PHONE
from tests.browser.steps import share_link, sideways_overflow
from tests.browser.test_pages_ux import serious_violations, signed_in
from tests.clips import make_clip
from tests.factories import UserFactory, make_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESK = ViewportSize(width=1366, height=900)
SHOTS = ARTIFACTS / "job-page"


@pytest.fixture
def console_errors() -> list[str]:
    return []


@pytest.fixture
def watched(open_page, console_errors: list[str]) -> Callable[..., Page]:
    """`open_page`, with the console's errors collected (CSP violations fail the test anyway)."""

    def open_watched(name: str, *, viewport: ViewportSize = DESK) -> Page:
        page = open_page(name, viewport=viewport)

        def note(message: ConsoleMessage) -> None:
            if message.type == "error":
                console_errors.append(f"{name}: {message.text}")

        page.on("console", note)
        page.on("pageerror", lambda error: console_errors.append(f"{name}: {error}"))
        return page

    return open_watched


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def finished_file_job(team: Team, tmp_path: Path) -> Job:
    """A file job cleaned and saved, with both videos (with sound) and both poster frames
    stored, as the pipeline leaves one."""
    original = make_clip(
        tmp_path / "forest-portrait.mp4", seconds=4, width=288, height=512, audio=True
    )
    result = tmp_path / "clean.mp4"
    paint_over_marks(original, result)
    probed = probe_video(original)
    job = make_job(team, provider="swc", state=JobState.SUCCEEDED, waited=2, took=20.9)
    stored = {
        "original_file": default_storage.save("originals/forest.mp4", File(original.open("rb"))),
        "result_file": default_storage.save("results/forest.mp4", File(result.open("rb"))),
        "original_poster": default_storage.save("posters/o.jpg", ContentFile(probed.poster)),
        "result_poster": default_storage.save(
            "posters/r.jpg", ContentFile(poster_jpeg(result) or b"")
        ),
    }
    Job.objects.filter(pk=job.pk).update(
        input_kind=InputKind.FILE,
        original_name="forest-portrait.mp4",
        original_size=original.stat().st_size,
        original_sha256="a" * 64,
        media_info=probed.info.as_json(),
        result_size=result.stat().st_size,
        result_sha256="b" * 64,
        provider_cost_ms=20_882,
        expires_at=timezone.now() + timedelta(days=7),
        **stored,
    )
    job.refresh_from_db()
    return job


@pytest.fixture
def olga(media_storage: Path):
    return UserFactory.create(email="olga@example.com")


def olgas_team(olga) -> Team:
    return olga.memberships.get(team__is_personal=True).team


def metadata_loaded(page: Page) -> None:
    page.wait_for_function(
        "() => [...document.querySelectorAll('.before-after video')]"
        ".every(video => video.readyState >= 1 && video.duration > 0)"
    )


def players(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const [before, after] = document.querySelectorAll('.before-after video');
          return {before: before.currentTime, after: after.currentTime,
                  beforePaused: before.paused, afterPaused: after.paused,
                  beforeMuted: before.muted, beforeDuration: before.duration};
        }"""
    )


# --- Before and after ---------------------------------------------------------------------------
@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["desk", "phone"])
def test_before_and_after_play_together_and_a_divider_compares_the_first_frame(
    watched, live_server: LiveServer, olga, tmp_path, console_errors, viewport
):
    job = finished_file_job(olgas_team(olga), tmp_path)
    page = signed_in(watched("olga", viewport=viewport), live_server, olga)

    page.goto(job.get_absolute_url())
    metadata_loaded(page)

    # "Before" knows its length too, and both go together: play, pause and seek either one.
    assert players(page)["beforeDuration"] > 3.5
    together = page.get_by_label("Play both together")
    expect(together).to_be_checked()
    before = page.locator(".before-after video.original-video")
    after = page.locator(".before-after video.result-video")
    before.evaluate("video => video.play()")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.before-after video')]"
        ".every(video => !video.paused && video.currentTime > 0.3)"
    )
    state = players(page)
    assert state["beforeMuted"]  # one sound: the cleaned video's
    assert abs(state["before"] - state["after"]) < 0.4
    after.evaluate("video => video.pause()")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.before-after video')].every(v => v.paused)"
    )
    after.evaluate("video => { video.currentTime = 2.5; }")
    page.wait_for_function(
        "() => Math.abs(document.querySelector('video.original-video').currentTime - 2.5) < 0.1"
    )
    # Unlinked, each is its own player again.
    together.uncheck()
    before.evaluate("video => { video.currentTime = 0.5; }")
    page.wait_for_timeout(300)
    assert abs(players(page)["after"] - 2.5) < 0.1

    # The divider: the first frame, before on its left and after on its right.
    wipe = page.get_by_role("figure").filter(has=page.get_by_label(re.compile("divider")))
    expect(wipe).to_be_visible()
    frame = page.locator(".wipe-frame")
    assert frame.evaluate("el => el.style.getPropertyValue('--wipe')") == "50%"
    slider = page.get_by_label("Compare the first frame: drag to move the divider")
    slider.focus()
    page.keyboard.press("Home")
    assert frame.evaluate("el => el.style.getPropertyValue('--wipe')") == "0%"
    box = frame.bounding_box()
    assert box is not None
    frame.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    assert 70 <= int(slider.input_value()) <= 80
    clip = page.locator(".wipe-after").evaluate("el => getComputedStyle(el).clipPath")
    assert clip.startswith(("inset(0px 0px 0px 7", "inset(0px 0px 0px 8"))

    # The figures, in words people use, folded away.
    page.get_by_text("Details", exact=True).click()
    expect(page.get_by_text("Cleaning took")).to_be_visible()
    expect(page.locator(".job-details")).to_contain_text("20.9 seconds")
    assert sideways_overflow(page) == 0
    assert serious_violations(page) == []
    shoot(page, f"before-after-{viewport['width']}")
    assert console_errors == []


def test_without_javascript_before_and_after_are_two_plain_players(
    browser: Browser, live_server: LiveServer, olga, tmp_path
):
    job = finished_file_job(olgas_team(olga), tmp_path)
    context = browser.new_context(
        base_url=live_server.url, viewport=DESK, java_script_enabled=False
    )
    page = signed_in(context.new_page(), live_server, olga)

    page.goto(job.get_absolute_url())

    videos = page.locator(".before-after video")
    expect(videos).to_have_count(2)
    for video in videos.all():
        assert video.get_attribute("controls") is not None
        assert video.get_attribute("preload") == "metadata"
    expect(page.locator(".wipe")).to_be_hidden()
    expect(page.locator("[data-compare-sync]")).to_be_hidden()
    shoot(page, "before-after-no-javascript")
    context.close()


# --- Times that stay true -----------------------------------------------------------------------
@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["desk", "phone"])
def test_relative_times_stay_true_while_the_list_sits_idle(
    watched, live_server: LiveServer, olga, console_errors, viewport
):
    team = olgas_team(olga)
    job = make_job(
        team,
        state=JobState.SUCCEEDED,
        created_at=timezone.now() - timedelta(seconds=31),
        waited=1,
        took=5,
    )
    Job.objects.filter(pk=job.pk).update(source_url=share_link(31))
    page = signed_in(watched("olga", viewport=viewport), live_server, olga)
    page.clock.install()
    requests: list[str] = []
    page.goto(f"/t/{team.public_id}/dashboard/")
    # What the page asks the app for (the browser's own favicon fetch aside).
    page.on(
        "request",
        lambda request: (
            requests.append(request.url)
            if request.resource_type in ("document", "xhr", "fetch")
            else None
        ),
    )
    # The row tells its time once at each width (beside the name on a phone, in its column on a
    # desk): the one on screen is read.
    when = page.locator("#jobs-table time[data-ago]:visible")
    expect(when).to_have_text(re.compile(r"^[3-5]\d seconds ago$"))

    page.clock.fast_forward("05:00")

    expect(when).to_have_text("5 minutes ago")
    page.clock.fast_forward("03:00:00")
    expect(when).to_have_text("3 hours ago")
    page.clock.fast_forward("24:00:00")
    expect(when).to_have_text("1\u00a0day, 3\u00a0hours ago")
    # Nothing was fetched again: the words moved on by themselves.
    assert requests == []
    assert serious_violations(page) == []
    shoot(page, f"list-{viewport['width']}")
    assert console_errors == []


# --- Waiting, as the badge and the sentence say it ----------------------------------------------
@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["desk", "phone"])
def test_a_video_waiting_for_a_server_says_so_and_how_many_go_first(
    watched, live_server: LiveServer, olga, console_errors, viewport
):
    team = olgas_team(olga)
    others = UserFactory.create(email="bob@example.com").memberships.get().team
    for _ in range(2):
        make_job(others, provider="swc")
    job = make_job(team, provider="swc")
    Job.objects.filter(pk=job.pk).update(original_name="forest-portrait.mp4")
    job.refresh_from_db()
    page = signed_in(watched("olga", viewport=viewport), live_server, olga)

    page.goto(job.get_absolute_url())

    expect(page.locator("#job-status .badge")).to_have_text("Waiting")
    expect(page.get_by_test_id("where-it-is")).to_have_text(
        "Waiting for a free cleaning server (2 ahead)."
    )
    assert sideways_overflow(page) == 0
    assert serious_violations(page) == []
    shoot(page, f"waiting-{viewport['width']}")
    assert console_errors == []
