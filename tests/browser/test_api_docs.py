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
