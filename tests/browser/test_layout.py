"""The pages people use most fit a phone's screen: nothing makes them scroll sideways."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE
from tests.browser.steps import (
    JOB_TIMEOUT_MS,
    job_row,
    paste_links,
    share_link,
    sideways_overflow,
    sign_up,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Long enough to stretch every place an address is shown (menus, filters, tables).
EMAIL = "maximilian.featherstonehaugh@example.com"


def test_the_dashboard_job_credits_and_team_pages_fit_a_phone(live_stack, open_page):
    page = open_page("phone", viewport=PHONE)
    page.goto("/accounts/signup/")
    sign_up(page, EMAIL)
    # The ownership statement: its checkbox and the first line of its label side by side.
    box = page.get_by_role("checkbox").bounding_box()
    label = page.locator(".checkbox-row label").bounding_box()
    assert box is not None
    assert label is not None
    assert label["x"] > box["x"] + box["width"]
    assert label["y"] < box["y"] + box["height"]
    links = [share_link(11), share_link(12)]
    paste_links(page, [links[0], "https://sora.chatgpt.com/d/gen_01k7example", links[1]])
    for link in links:
        expect(job_row(page, link).locator(".badge")).to_have_text("Done", timeout=JOB_TIMEOUT_MS)
    # The download button is within the screen's width, not behind a sideways scroll.
    button = job_row(page, links[0]).get_by_role("link", name="Download").bounding_box()
    assert button is not None
    assert button["x"] + button["width"] <= PHONE["width"]
    assert sideways_overflow(page) == 0, "dashboard"

    job_row(page, links[0]).get_by_role("link", name=links[0].rsplit("/", 1)[1]).click()
    expect(page.get_by_role("link", name="Download MP4")).to_be_visible()
    assert sideways_overflow(page) == 0, "job page"

    page.goto("/billing/")
    expect(page.get_by_test_id("available")).to_be_visible()
    assert sideways_overflow(page) == 0, "credits page"

    page.get_by_role("button", name="Menu").click()
    page.get_by_role("link", name="Team", exact=True).click()
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    assert sideways_overflow(page) == 0, "team page"
