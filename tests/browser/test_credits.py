"""Buying credits in a real browser. Stripe is faked where Unmark meets it: its API at the HTTP
boundary (respx, in this process, where the live server runs), its Checkout page by routing
the browser, and its webhook by posting a signed event to the live server."""

import json
import re
from collections.abc import Iterator

import httpx
import pytest
import respx
from playwright.sync_api import Route, expect
from pytest_django.live_server_helper import LiveServer

from tests.billing.stripe_fakes import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, event, sign
from tests.browser.steps import balance_chip, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stripe_api(settings, live_server: LiveServer) -> Iterator[FakeStripe]:
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    with respx.mock(base_url="https://api.stripe.com", assert_all_called=False) as router:
        # The test's own calls to the live server (the webhook) go through for real.
        router.route(host=httpx.URL(live_server.url).host).pass_through()
        yield FakeStripe(router)


def deliver_webhook(live_server: LiveServer, body: dict[str, object]) -> httpx.Response:
    """Posts an event to the live server as Stripe does: raw JSON, signed with the secret."""
    payload = json.dumps(body).encode()
    return httpx.post(
        f"{live_server.url}/hooks/stripe/",
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
    )


def test_an_owner_buys_a_pack_and_the_balance_rises(stripe_api, live_server, open_page):
    page = open_page("erin")

    def stripe_checkout(route: Route) -> None:
        # Stripe's hosted page, reduced to what matters here: the amount and a way back.
        session = stripe_api.sessions[route.request.url.rsplit("/", 1)[1]]
        back = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
        amount = f"${session['amount_total'] / 100:.2f}"
        route.fulfill(
            content_type="text/html",
            body=f"<title>Checkout</title><h1>Pay Unmark {amount}</h1><a href='{back}'>Pay</a>",
        )

    page.route("https://checkout.stripe.com/**", stripe_checkout)
    page.goto("/accounts/signup/")
    sign_up(page, "erin@example.com")
    expect(balance_chip(page)).to_have_text("30 available")

    balance_chip(page).click()
    expect(page.get_by_test_id("available")).to_have_text("30 credits available")
    page.get_by_label("1,000 credits").check()
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.get_by_role("heading", name="Pay Unmark $5.00")).to_be_visible()
    session_id = page.url.rsplit("/", 1)[1]
    # The buyer pays; Stripe tells Unmark by webhook before it sends the buyer back.
    paid = stripe_api.pay(session_id)
    delivered = deliver_webhook(live_server, event("checkout.session.completed", paid))
    assert delivered.status_code == 200
    page.get_by_role("link", name="Pay").click()

    expect(page).to_have_url(re.compile(r"/t/[0-9a-f-]{36}/billing/$"))
    expect(
        page.get_by_text("Payment received: 1,000 credits were added to erin's team.")
    ).to_be_visible()
    expect(balance_chip(page)).to_have_text("1,030 available")
    expect(page.get_by_test_id("available")).to_have_text("1,030 credits available")
    topup = page.locator("#topups-title + .table-wrap tbody tr")
    expect(topup).to_have_count(1)
    expect(topup).to_contain_text("1,000")
    expect(topup).to_contain_text("$5.00")
    expect(topup.locator(".badge")).to_have_text("Paid")
