"""The API's docs page in Chromium: Swagger UI from our own static files, inside the CSP,
offline (every request outside the live server is refused and would show)."""

import pytest
from playwright.sync_api import Route, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_render_offline_inside_the_csp(open_page, live_server):
    page = open_page("integrator")
    outside: list[str] = []

    def refuse_outside(route: Route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", refuse_outside)
    page.goto("/api/docs")

    expect(page.get_by_role("heading", name="Unmark API")).to_be_visible()
    expect(page.get_by_text("Create jobs from links or uploaded files")).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    assert outside == []
    # open_page fails the test on any Content-Security-Policy violation the console reported.


def test_an_owner_makes_a_key_copies_it_once_and_revokes_it(open_page, live_server, acme, alice):
    from apps.api.models import ApiKey
    from tests.browser.test_pages_ux import serious_violations, signed_in

    page = signed_in(open_page("alice"), live_server, alice)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/t/{acme.public_id}/members/")
    page.get_by_role("navigation", name="Acme").get_by_role("link", name="API keys").click()

    page.get_by_label("Name").fill("Zapier")
    page.get_by_role("button", name="Make the key").click()

    shown = page.locator("#new-key")
    expect(shown).to_contain_text("um_test_")
    assert serious_violations(page) == []
    key = ApiKey.objects.get()
    assert shown.inner_text().startswith(key.prefix)
    # Shown after a redirect: the address does not carry it, and a refresh makes no key.
    assert page.url == f"{live_server.url}/t/{acme.public_id}/api-keys/"
    page.get_by_role("button", name="Copy the key").click()
    expect(page.locator(".copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == shown.inner_text()
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)
    assert ApiKey.objects.count() == 1

    page.get_by_role("link", name="Revoke the key Zapier").click()
    page.get_by_role("button", name="Revoke the key").click()

    expect(page.get_by_text("Revoked “Zapier”. It no longer works.")).to_be_visible()
    key.refresh_from_db()
    assert key.revoked_by == alice
