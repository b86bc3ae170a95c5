"""A new person's first videos, from sign-up to a downloaded MP4, in a real browser."""

import hashlib
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.provenance.credentials import read_credentials
from apps.simulators.kie import SAMPLE_MP4
from tests.browser.steps import (
    JOB_TIMEOUT_MS,
    balance_chip,
    job_row,
    paste_links,
    share_link,
    sign_up,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DRAFT_LINK = "https://sora.chatgpt.com/d/gen_01k7example"


def test_a_new_person_signs_up_and_gets_clean_copies_of_their_good_links(live_stack, open_page):
    page = open_page("dana")
    page.goto("/")
    page.get_by_role("link", name="Create a free account").click()
    sign_up(page, "dana@example.com")

    expect(page).to_have_url(re.compile(r"/t/[0-9a-f-]{36}/dashboard/$"))
    expect(balance_chip(page)).to_have_text("30 available")
    expect(page.get_by_text("No videos yet.")).to_be_visible()

    # A mark on the document: a reload or a plain form post would wipe it.
    page.evaluate("window.notReloaded = true")
    good = [share_link(1), share_link(2)]
    paste_links(page, [good[0], DRAFT_LINK, good[1]])

    expect(page.get_by_text("2 videos added")).to_be_visible()
    problem = page.locator(".line-errors li")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("Line 2")
    expect(problem).to_contain_text(DRAFT_LINK)
    expect(problem).to_contain_text("This is a draft link")
    # Only the line to fix stays in the box; the two good ones hold 10 credits each.
    expect(page.get_by_label("Sora share links")).to_have_value(DRAFT_LINK)
    # Held, not spent: the header and the dashboard say so apart.
    expect(balance_chip(page)).to_have_text("10 available · low · 20 reserved")
    expect(page.get_by_test_id("summary-reserved")).to_have_text("20")

    # Still on their way when the table appears, then done while the page is watched.
    rows = [job_row(page, link) for link in good]
    for row in rows:
        expect(row.locator(".badge")).not_to_have_text("Done")
        expect(row.locator("td.num")).to_have_text("10 reserved")
    for row in rows:
        expect(row.locator(".badge")).to_have_text("Done", timeout=JOB_TIMEOUT_MS)
        expect(row.locator("td.num")).to_have_text("10 charged")
    expect(balance_chip(page)).to_have_text("10 available · low")
    assert page.evaluate("window.notReloaded") is True

    # One email for the paste, once both videos were done, its links straight to them.
    (email,) = live_stack.mailbox.wait_for(1)
    assert email["To"] == "dana@example.com"
    assert email["Subject"] == "[Unmark] Your 2 videos are ready"
    text = email.get_body(preferencelist=("plain",)).get_content()
    job_links = re.findall(r"http://\S+/jobs/\S+/", text)
    assert len(job_links) == 2
    html = email.get_body(preferencelist=("html",)).get_content()
    assert f'href="{job_links[0]}"' in html

    first_id = good[0].rsplit("/", 1)[1]
    rows[0].get_by_role("link", name=first_id).click()
    expect(page.get_by_role("heading", name=f"Video {first_id}")).to_be_visible()
    # The digest is among the details, folded away until asked for: the digest of the copy
    # people download, which is Kie's result with our Content Credentials added.
    page.get_by_text("Details", exact=True).click()
    digest = page.locator("code.digest").last
    expect(digest).to_be_visible()
    shown_digest = digest.inner_text()
    # The preview plays: Chromium fetched the video, read its metadata and decoded frames.
    page.locator("video.preview").evaluate("video => { video.muted = true; return video.play(); }")
    page.wait_for_function("() => document.querySelector('video.preview').currentTime > 0")
    assert page.locator("video.preview").evaluate("video => video.videoWidth") == 320

    with page.expect_download() as from_job_page:
        page.get_by_role("link", name="Download MP4").click()
    assert from_job_page.value.suggested_filename == f"sora-{first_id}-unmarked.mp4"
    downloaded = Path(from_job_page.value.path())
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == shown_digest
    assert SAMPLE_MP4.read_bytes() != downloaded.read_bytes()
    credentials = read_credentials(downloaded)
    assert credentials is not None
    assert credentials.ai_generated is True

    page.get_by_role("link", name="All videos").click()
    with page.expect_download() as from_dashboard:
        rows[1].get_by_role("link", name="Download").click()
    assert read_credentials(Path(from_dashboard.value.path())) is not None

    # Two videos done: 20 of the 30 welcome credits spent, nothing held any more.
    expect(balance_chip(page)).to_have_text("10 available · low")
    balance_chip(page).click()
    expect(page.get_by_test_id("available")).to_have_text("10 credits available")
    expect(page.get_by_text("Enough for 1 video.")).to_be_visible()
    expect(page.get_by_text("reserved for videos in progress")).to_have_count(0)
    # The history: one line per video, charged and linked to it; the welcome credits.
    history = page.locator("#ledger tbody tr")
    expect(history).to_have_count(3)
    expect(history.nth(0)).to_contain_text("Charged")
    expect(history.nth(0)).to_contain_text("\N{MINUS SIGN}10")
    expect(history.nth(2)).to_contain_text("Free credits")
    expect(page.locator("#ledger")).not_to_contain_text("Capture")
    history.nth(0).get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Video s_"))).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("10 charged")
    page.goto(job_links[1])
    expect(page.locator(".badge")).to_have_text("Done")


def test_a_video_kie_cannot_clean_fails_live_and_its_credits_come_back(live_stack, open_page):
    live_stack.simulator.configure(failure_rate=1)
    page = open_page("fay")
    page.goto("/accounts/signup/")
    sign_up(page, "fay@example.com")
    page.evaluate("window.notReloaded = true")
    link = share_link(3)

    paste_links(page, [link])

    expect(balance_chip(page)).to_have_text("20 available · low · 10 reserved")
    row = job_row(page, link)
    expect(row.locator(".badge")).to_have_text("Failed", timeout=JOB_TIMEOUT_MS)
    expect(row).to_contain_text("Kie could not remove the watermark")
    expect(row).to_contain_text("Nothing was charged.")
    expect(balance_chip(page)).to_have_text("30 available")
    expect(row.locator("td.num")).to_have_text("10 refunded")
    # A screen reader hears it: the polite region outside the refreshed table says so.
    expect(page.locator("#announcer")).to_contain_text("failed; its credits were refunded")
    assert page.evaluate("window.notReloaded") is True


def test_a_link_the_team_already_cleaned_points_to_its_result_and_is_charged_only_if_asked(
    live_stack, open_page
):
    page = open_page("erin")
    page.goto("/")
    page.get_by_role("link", name="Create a free account").click()
    sign_up(page, "erin@example.com")
    link = share_link(7)
    paste_links(page, [link])
    first = job_row(page, link)
    expect(first.locator(".badge")).to_have_text("Done", timeout=JOB_TIMEOUT_MS)
    expect(balance_chip(page)).to_have_text("20 available · low")

    paste_links(page, [link])

    notice = page.locator(".message-info").filter(has_text="Already cleaned")
    expect(notice).to_contain_text("nothing was charged")
    expect(balance_chip(page)).to_have_text("20 available · low")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    result = notice.get_by_role("link", name="see the cleaned video")
    expect(result).to_have_attribute("href", re.compile(r"/t/[0-9a-f-]{36}/jobs/[0-9a-f-]{36}/$"))
    result_url = str(result.get_attribute("href"))

    notice.get_by_role("button", name="Process it again").click()

    expect(page.get_by_text("1 video added")).to_be_visible()
    expect(page.locator("#jobs-table tbody tr")).to_have_count(2)
    expect(balance_chip(page)).to_have_text(re.compile(r"^10 available · low( · 10 reserved)?$"))
    again = page.locator("#jobs-table tbody tr").first
    expect(again.locator(".badge")).to_have_text("Done", timeout=JOB_TIMEOUT_MS)
    expect(balance_chip(page)).to_have_text("10 available · low")

    # The notice's link led to the first, finished video.
    page.goto(result_url)
    expect(page.get_by_role("heading", name=f"Video {link.rsplit('/', 1)[1]}")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("10 charged")
