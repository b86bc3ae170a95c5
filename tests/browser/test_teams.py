"""A team in a real browser: an owner invites a teammate by email, the teammate signs up from
the invitation, confirms the address and joins; an outsider sees nothing of the team."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.steps import (
    JOB_TIMEOUT_MS,
    balance_chip,
    job_row,
    link_in_email,
    paste_links,
    share_link,
    sign_up,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEAM = "olivia's team"


def test_an_invited_teammate_sees_the_teams_videos_and_an_outsider_sees_none(live_stack, open_page):
    owner = open_page("owner")
    owner.goto("/accounts/signup/")
    sign_up(owner, "olivia@example.com")
    link = share_link(7)
    video_id = link.rsplit("/", 1)[1]
    paste_links(owner, [link])
    expect(job_row(owner, link).locator(".badge")).to_have_text("Done", timeout=JOB_TIMEOUT_MS)
    job_path = job_row(owner, link).get_by_role("link", name=video_id).get_attribute("href")
    assert job_path

    owner.get_by_role("link", name="Team", exact=True).click()
    owner.get_by_label("Email address").fill("tom@example.com")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.locator(".invitation-list")).to_contain_text("tom@example.com")

    teammate = open_page("teammate")
    teammate.goto(link_in_email("tom@example.com", r"http://\S+/teams/invite/[\w-]+/"))
    expect(teammate.get_by_role("heading", name=f"Join {TEAM}")).to_be_visible()
    teammate.locator(".invitation-card").get_by_role("link", name="Sign up").click()
    # The sign-up form comes filled in with the invited address; opening the emailed link
    # proved the mailbox, so there is no confirmation round before joining.
    expect(teammate.get_by_label("Email")).to_have_value("tom@example.com")
    sign_up(teammate, "tom@example.com")
    teammate.get_by_role("button", name=f"Join {TEAM}").click()

    expect(teammate.get_by_text(f"Welcome to {TEAM}!")).to_be_visible()
    expect(teammate.locator(".team-switcher summary")).to_have_text(TEAM)
    expect(job_row(teammate, link).locator(".badge")).to_have_text("Done")
    expect(balance_chip(teammate)).to_have_text("20 available · low")
    teammate.get_by_role("link", name=video_id).click()
    expect(teammate.get_by_role("link", name="Download MP4")).to_be_visible()

    outsider = open_page("outsider")
    outsider.goto("/accounts/signup/")
    sign_up(outsider, "oscar@example.com")
    expect(outsider).to_have_url(re.compile(r"/t/[0-9a-f-]{36}/dashboard/$"))
    expect(outsider.get_by_text("No videos yet.")).to_be_visible()
    expect(outsider.get_by_text(video_id)).to_have_count(0)
    response = outsider.goto(job_path)
    assert response is not None
    assert response.status == 404
    assert outsider.request.get(f"{job_path}download/").status == 404
    # The same job under the outsider's own team's address does not exist either.
    own_team = outsider.url.split("/t/", 1)[1].split("/", 1)[0]
    theirs = job_path.split("/t/", 1)[1].split("/", 1)[0]
    assert outsider.goto(job_path.replace(theirs, own_team)).status == 404
