"""Every page an owner (and staff) can reach fits a phone: nothing scrolls sideways, the
header is one row with its links behind a Menu button, the upload box speaks to a phone, and
the job list keeps each video's name, date and credits. The header's menus open one at a
time and Escape closes them, giving the focus back."""

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from apps.jobs.models import InputKind, Job, JobState
from apps.webhooks.models import Endpoint
from tests.browser.conftest import PHONE
from tests.browser.steps import sideways_overflow
from tests.browser.test_pages_ux import serious_violations, signed_in
from tests.factories import UserFactory, make_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Long enough to stretch every place a name or an address is shown.
LONG_NAME = "forest-portrait-at-sunset-with-the-river-and-mountains-final-v2.mp4"
LONG_URL = "https://hooks.example.com/unmark/webhooks/receiver/with/a/long/path?token=abcdef0123"
# The header's row at 390 px: a second row would add at least 40 px.
ONE_ROW_PX = 70


@pytest.fixture
def owners_pages(acme, alice) -> list[str]:
    """The addresses of every page the owner of Acme reaches, with a job and an endpoint."""
    job = make_job(acme, provider="swc", state=JobState.SUCCEEDED, waited=2, took=20.9)
    Job.objects.filter(pk=job.pk).update(input_kind=InputKind.FILE, original_name=LONG_NAME)
    endpoint = Endpoint.objects.create(team=acme, url=LONG_URL, events=["job.succeeded"])
    team = acme.public_id
    return [
        reverse("jobs:dashboard", args=[team]),
        job.get_absolute_url(),
        reverse("billing:overview", args=[team]),
        reverse("accounts:members", args=[team]),
        reverse("accounts:member", args=[team, alice.memberships.get(team=acme).pk]),
        reverse("accounts:activity", args=[team]),
        reverse("accounts:team_settings", args=[team]),
        reverse("accounts:teams"),
        reverse("api_keys:list", args=[team]),
        reverse("webhooks:endpoints", args=[team]),
        reverse("webhooks:endpoint", args=[team, endpoint.public_id]),
        reverse("account_email"),
        reverse("account_change_password"),
        reverse("mfa_index"),
        reverse("usersessions_list"),
        reverse("privacy:my_data"),
        reverse("privacy:delete_account"),
        reverse("notifications"),
    ]


def header_height(page: Page) -> float:
    box = page.locator(".site-header").bounding_box()
    assert box is not None
    return box["height"]


def test_no_page_an_owner_reaches_scrolls_sideways_on_a_phone(
    open_page, live_server, alice, owners_pages
):
    page = signed_in(open_page("alice", viewport=PHONE), live_server, alice)
    for url in owners_pages:
        page.goto(url)
        assert sideways_overflow(page) == 0, url
        assert header_height(page) < ONE_ROW_PX, url
    # A new key is one long word.
    page.goto(owners_pages[8])
    page.get_by_label("Name").fill("Zapier")
    page.get_by_role("button", name="Make the key").click()
    expect(page.locator("#new-key")).to_be_visible()
    assert sideways_overflow(page) == 0, "a new API key"


def test_signed_out_pages_fit_a_phone_with_a_one_row_header(open_page):
    page = open_page("visitor", viewport=PHONE)
    for url in ["/", reverse("account_login"), reverse("account_signup"), reverse("terms")]:
        page.goto(url)
        assert sideways_overflow(page) == 0, url
        assert header_height(page) < ONE_ROW_PX, url


def test_the_operations_page_fits_a_phone_for_staff(open_page, live_server, settings):
    settings.STAFF_REQUIRE_MFA = False
    staff = UserFactory.create(email="operations.staff@example.com", is_staff=True)
    page = signed_in(open_page("staff", viewport=PHONE), live_server, staff)

    page.goto(reverse("ops:overview"))

    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert sideways_overflow(page) == 0
    assert header_height(page) < ONE_ROW_PX


def test_on_a_phone_the_header_folds_behind_a_menu_button(open_page, live_server, acme, alice):
    page = signed_in(open_page("alice", viewport=PHONE), live_server, alice)
    page.goto(reverse("jobs:dashboard", args=[acme.public_id]))
    links = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")
    expect(links).to_be_hidden()
    expect(page.locator("#balance-chip")).to_be_visible()

    menu.click()

    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(links.get_by_role("link", name="Team")).to_be_visible()
    page.keyboard.press("Escape")
    expect(links).to_be_hidden()
    expect(menu).to_be_focused()
    assert serious_violations(page) == []


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desk", "phone"])
def test_the_header_menus_open_one_at_a_time_and_escape_closes_them(
    open_page, live_server, acme, alice, viewport
):
    page = signed_in(
        open_page("alice", **({"viewport": viewport} if viewport else {})), live_server, alice
    )
    page.goto(reverse("jobs:dashboard", args=[acme.public_id]))
    if viewport:
        page.get_by_role("button", name="Menu").click()
    teams = page.locator("details.team-switcher")
    account = page.locator("details.user-menu")

    teams.locator("summary").click()
    # By keyboard: on a phone the open team menu lies over the account menu's button.
    account.locator("summary").focus()
    page.keyboard.press("Enter")

    expect(account).to_have_attribute("open", "")
    expect(teams).not_to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(account).not_to_have_attribute("open", "")
    expect(account.locator("summary")).to_be_focused()
    teams.locator("summary").click()
    page.locator(".site-footer").click()  # anywhere outside the menu
    expect(teams).not_to_have_attribute("open", "")


def test_the_upload_box_and_the_job_list_speak_to_a_phone(
    open_page, live_server, acme, alice, owners_pages
):
    page = signed_in(open_page("alice", viewport=PHONE), live_server, alice)
    page.goto(owners_pages[0])

    # A styled button, not the browser's "Choose Files / No file chosen"; still the input's
    # label, so the keyboard and screen readers reach the file input by it.
    expect(page.get_by_text("Choose videos")).to_be_visible()
    expect(page.get_by_text("Drop your exported Sora videos here")).to_be_hidden()
    chooser = page.get_by_label("Choose videos")
    assert chooser.evaluate("input => input.type") == "file"
    chooser.focus()
    expect(chooser).to_be_focused()
    assert (
        page.locator(".drop-zone .muted").evaluate("node => getComputedStyle(node).fontWeight")
        == "400"
    )
    expect(page.get_by_text("each up to 500 MB")).to_be_visible()

    row = page.locator("#jobs-table tbody tr").first
    name = row.get_by_role("link", name=LONG_NAME)
    expect(name).to_have_attribute("title", LONG_NAME)
    expect(row.locator(".video-meta")).to_be_visible()
    expect(row.locator(".video-meta")).to_contain_text("10 credits")
    expect(row.locator(".video-meta time")).to_be_visible()
    # Wrapped if need be, never cut: the credits are read in full.
    assert row.locator(".video-meta").evaluate("meta => meta.scrollWidth <= meta.clientWidth")
    shown = name.bounding_box()
    assert shown is not None
    assert shown["width"] > 120  # about 15 characters of the name, then "…"
    for part in (name, row.locator(".video-meta"), row.locator("td.actions")):
        box = part.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= PHONE["width"]
    assert serious_violations(page) == []
