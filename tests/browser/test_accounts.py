"""Accounts in a real browser: the styled sign-in pages, two-factor (authenticator app, recovery
codes, a security key on Chromium's virtual authenticator), a team that requires two-factor,
sessions, the data export and deleting an account. Every account page is checked with axe-core.

`UNMARK_SCREENSHOTS=1` also saves the main account pages at desktop and phone widths to
`test-artifacts/account-pages/`.
"""

import json
import os
import re
import time
import zipfile
from collections.abc import Iterator

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value
from axe_playwright_python.sync_playwright import Axe
from django.db import connections
from playwright.sync_api import Browser, Page, expect

from apps.accounts.models import User
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.browser.steps import PASSWORD, link_in_email, sideways_overflow, sign_up
from tests.factories import PASSWORD as FACTORY_PASSWORD
from tests.factories import UserFactory, add_member, confirm_email, make_team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("UNMARK_SCREENSHOTS") == "1"
SCREENSHOT_DIR = ARTIFACTS / "account-pages"
TOTP_PERIOD = 30
axe = Axe()


@pytest.fixture(autouse=True)
def _close_this_tests_connections(browser: Browser) -> Iterator[None]:
    """Closes the database connection the test's own queries opened while Playwright's loop
    runs (it is not the one pytest-django closes, and an open one keeps PostgreSQL from
    dropping the test database)."""
    yield
    connections.close_all()


def check_page(page: Page, name: str) -> None:
    """No serious or critical axe-core violation; a screenshot at both widths when asked."""
    results = axe.run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"{name}: {serious}"
    viewport = page.viewport_size
    for width, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        assert sideways_overflow(page) == 0, f"{name} scrolls sideways at {width} width"
        if SCREENSHOTS:
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOT_DIR / f"{name}-{width}.png", full_page=True)
    if viewport:
        page.set_viewport_size(viewport)


def totp_code(secret: str, *, windows_ahead: int = 0) -> str:
    """The code an authenticator app shows (RFC 6238, via allauth's own HOTP helper).

    A code is accepted once: a later sign-in uses the next window's, which the one-window
    tolerance of the settings accepts.
    """
    counter = int(time.time()) // TOTP_PERIOD + windows_ahead
    return format_hotp_value(hotp_value(secret, counter))


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page: Page) -> None:
    page.locator(".user-menu summary").click()
    page.get_by_role("button", name="Sign out").click()
    expect(
        page.get_by_role("navigation", name="Account").get_by_role("link", name="Sign in")
    ).to_be_visible()


def sign_up_and_confirm(page: Page, email: str, *, check: bool = False) -> None:
    """Signs up, then opens the confirmation link emailed to `email` (two-factor needs it)."""
    page.goto("/accounts/signup/")
    sign_up(page, email)
    page.goto(link_in_email(email, r"http://\S+/accounts/confirm-email/\S+/"))
    if check:
        check_page(page, "confirm-email")
    page.get_by_role("button", name="Confirm").click()
    signed_in_as(page, email)


def signed_in_as(page: Page, email: str) -> None:
    expect(page.locator(".user-menu summary")).to_have_text(email)


def confirm_its_me(page: Page, *, password: str = PASSWORD, check: bool = False) -> None:
    """Answers the password prompt that guards changes to how one signs in."""
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    if check:
        check_page(page, "reauthenticate")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Continue").click()


def enrol_authenticator_app(
    page: Page, *, password: str = PASSWORD, check: bool = False
) -> tuple[str, list[str]]:
    """From the two-factor page: sets up an authenticator app; returns its secret and the
    recovery codes shown afterwards."""
    page.get_by_role("link", name="Set up an authenticator app").click()
    # A recent sign-in with a password skips the prompt; an older one does not.
    either = re.compile("Confirm it's you|Set up an authenticator app")
    expect(page.get_by_role("heading", name=either)).to_be_visible()
    if page.get_by_role("heading", name="Confirm it's you").is_visible():
        confirm_its_me(page, password=password, check=check)
    expect(page.get_by_role("heading", name="Set up an authenticator app")).to_be_visible()
    if check:
        check_page(page, "totp-activate")
    secret = page.get_by_label("Secret").input_value()
    page.get_by_label("Authenticator code").fill(totp_code(secret))
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    codes = page.get_by_label("Unused codes").input_value().split()
    return secret, codes


def test_every_account_page_passes_axe(open_page):
    page = open_page("visitor")
    for name, path in [
        ("sign-in", "/accounts/login/"),
        ("sign-up", "/accounts/signup/"),
        ("password-reset", "/accounts/password/reset/"),
        ("password-reset-done", "/accounts/password/reset/done/"),
    ]:
        page.goto(path)
        check_page(page, name)

    page.goto("/accounts/signup/")
    sign_up(page, "ada@example.com")
    for name, path in [
        ("email-addresses", "/accounts/email/"),
        ("password", "/accounts/password/change/"),
        ("two-factor", "/accounts/2fa/"),
        ("sessions", "/accounts/sessions/"),
        ("your-data", "/account/data/"),
        ("delete-account", "/account/delete/"),
    ]:
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        check_page(page, name)

    # The dark theme has its own colours: its contrast is checked on the page with the most.
    page.emulate_media(color_scheme="dark")
    page.goto("/account/delete/")
    check_page(page, "delete-account-dark")


def test_an_authenticator_app_then_a_code_then_a_recovery_code(open_page):
    page = open_page("ada")
    sign_up_and_confirm(page, "ada@example.com", check=True)
    page.goto("/accounts/2fa/")
    secret, codes = enrol_authenticator_app(page, check=True)
    check_page(page, "recovery-codes")
    assert len(codes) == 10
    sign_out(page)

    sign_in(page, "ada@example.com")
    expect(page.get_by_role("heading", name="One more step")).to_be_visible()
    check_page(page, "two-factor-sign-in")
    page.get_by_label("Code").fill(totp_code(secret, windows_ahead=1))
    page.get_by_role("button", name="Sign in", exact=True).click()
    signed_in_as(page, "ada@example.com")
    sign_out(page)

    sign_in(page, "ada@example.com")
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Sign in", exact=True).click()
    signed_in_as(page, "ada@example.com")
    recovery = Authenticator.objects.get(
        user__email="ada@example.com", type=Authenticator.Type.RECOVERY_CODES
    )
    assert codes[0] not in RecoveryCodes(recovery).get_unused_codes()
    assert len(RecoveryCodes(recovery).get_unused_codes()) == 9
    for name, path in [
        ("totp-deactivate", "/accounts/2fa/totp/deactivate/"),
        ("recovery-codes-new", "/accounts/2fa/recovery-codes/generate/"),
    ]:
        page.goto(path)
        if name == "totp-deactivate":  # the first change after signing in asks again
            confirm_its_me(page, check=True)
        expect(page.locator("h1")).to_have_text(re.compile(r"\?$"))
        check_page(page, name)


def test_a_security_key_on_the_virtual_authenticator_signs_in_without_a_password(open_page):
    page = open_page("grace")
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    sign_up_and_confirm(page, "grace@example.com")
    page.goto("/accounts/2fa/")
    page.get_by_role("link", name="Add a security key").click()
    confirm_its_me(page)
    check_page(page, "security-key-add")
    page.get_by_label("Name").fill("Laptop")
    page.get_by_label("Passwordless").check()
    page.get_by_role("button", name="Add key").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    key = Authenticator.objects.get(
        user__email="grace@example.com", type=Authenticator.Type.WEBAUTHN
    )
    assert key.wrap().name == "Laptop"
    page.goto("/accounts/2fa/webauthn/")
    expect(page.get_by_role("link", name="Remove Laptop")).to_be_visible()
    check_page(page, "security-keys")
    sign_out(page)

    page.goto("/accounts/login/")
    page.get_by_role("button", name="Sign in with a passkey or security key").click()

    signed_in_as(page, "grace@example.com")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_a_team_that_requires_two_factor_stops_a_member_until_set_up(open_page):
    owner = UserFactory.create(email="olivia@example.com")
    confirm_email(owner)
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    TOTP.activate(owner, secret)
    team = make_team("Acme", owner=owner)
    member = UserFactory.create(email="mo@example.com")
    confirm_email(member)
    add_member(team, member)

    page = open_page("olivia")
    sign_in(page, "olivia@example.com", FACTORY_PASSWORD)
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Sign in", exact=True).click()
    signed_in_as(page, "olivia@example.com")
    page.goto(f"/t/{team.public_id}/settings/")
    check_page(page, "team-settings")
    two_factor = page.get_by_role("region", name="Two-factor authentication")
    two_factor.get_by_label("Require two-factor authentication for every member").check()
    two_factor.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Every member of Acme now needs two-factor")).to_be_visible()

    mo = open_page("mo")
    sign_in(mo, "mo@example.com", FACTORY_PASSWORD)
    signed_in_as(mo, "mo@example.com")
    mo.goto(f"/t/{team.public_id}/members/")
    expect(mo).to_have_url(re.compile(r"/accounts/2fa/$"))
    expect(mo.get_by_text("Acme requires two-factor authentication")).to_be_visible()
    enrol_authenticator_app(mo, password=FACTORY_PASSWORD)
    mo.goto(f"/t/{team.public_id}/members/")
    expect(mo.get_by_role("heading", name="Members")).to_be_visible()


def test_sessions_export_and_deletion(open_page, live_server):
    laptop = open_page("laptop")
    laptop.goto("/accounts/signup/")
    sign_up(laptop, "lin@example.com")
    phone = open_page("phone", viewport=PHONE)
    sign_in(phone, "lin@example.com")
    signed_in_as(phone, "lin@example.com")

    laptop.goto("/accounts/sessions/")
    expect(laptop.locator("tbody tr")).to_have_count(2)
    laptop.get_by_role("button", name="Sign out all other sessions").click()
    expect(laptop.get_by_text("This browser is the only one signed in.")).to_be_visible()
    phone.goto("/account/data/")
    expect(phone).to_have_url(re.compile(r"/accounts/login/"))

    laptop.goto("/account/data/")
    with laptop.expect_download() as waiting:
        laptop.get_by_role("link", name="Download my data (.zip)").click()
    download = waiting.value
    assert re.fullmatch(r"unmark-data-\d{4}-\d{2}-\d{2}\.zip", download.suggested_filename)
    archive = zipfile.ZipFile(download.path())
    assert json.loads(archive.read("profile.json"))["email"] == "lin@example.com"
    teams = json.loads(archive.read("teams.json"))
    assert [(t["team"], t["role"]) for t in teams] == [("lin's team", "Owner")]
    assert archive.read("jobs.csv").decode().splitlines()[0].startswith("video_id,team,input")
    credits = [n for n in archive.namelist() if n.startswith("credits/")]
    assert len(credits) == 1
    assert "Welcome credits" in archive.read(credits[0]).decode()

    laptop.goto("/account/delete/")
    laptop.get_by_label("Your password").fill(PASSWORD)
    laptop.get_by_role("button", name="Delete my account").click()

    expect(laptop.get_by_text("Your account is deleted.")).to_be_visible()
    expect(laptop.locator(".user-menu")).to_have_count(0)
    assert not User.objects.filter(email="lin@example.com").exists()
