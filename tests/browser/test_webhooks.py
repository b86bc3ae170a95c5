"""Webhooks in a real browser: an owner adds an endpoint, copies its secret, sends a test event
and pastes a link; the worker process delivers both to a receiver on a socket, which verifies
them with the `standardwebhooks` package."""

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.steps import JOB_TIMEOUT_MS, paste_links, share_link, sign_up
from tests.browser.test_pages_ux import serious_violations
from tests.webhooks.receiver import Receiver, start_receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker_env() -> dict[str, str]:
    return {"WEBHOOK_ALLOW_LOOPBACK": "true"}


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_LOOPBACK = True  # the live server checks the address as it is added
    receiver = start_receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def wait_for(receiver: Receiver, count: int, timeout: float = JOB_TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.received) >= count, f"{len(receiver.received)} arrived, not {count}"


def test_an_owner_adds_an_endpoint_and_receives_signed_events(
    live_stack, live_server, open_page, receiver
):
    page = open_page("erin")
    page.goto("/accounts/signup/")
    sign_up(page, "erin@example.com")
    live_stack.worker.wait_until_running()

    page.get_by_role("link", name="Team", exact=True).click()
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_text("No endpoints yet.")).to_be_visible()
    page.get_by_label("Endpoint URL").fill(receiver.url())
    page.get_by_label("credits.low").uncheck()
    page.get_by_role("button", name="Add the endpoint").click()

    expect(page.get_by_text("Copy it into your receiver now")).to_be_visible()
    secret = page.locator("#new-secret").inner_text()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{44}", secret)
    # Where there is no clipboard (an http:// address), the copy button selects the secret and
    # says how to copy it.
    page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.get_by_role("button", name="Copy the secret").click()
    expect(page.locator(".copy-status")).to_have_text(
        "Selected: press Ctrl+C (⌘C on a Mac) to copy it."
    )
    assert page.evaluate("String(window.getSelection())") == secret

    page.get_by_role("button", name="Send a test event").click()
    wait_for(receiver, 1)
    assert receiver.last().verify(secret)["type"] == "webhook.test"
    page.get_by_role("link", name="Refresh").click()  # htmx swaps the log in place
    expect(page.locator("#deliveries")).to_contain_text("Delivered")
    expect(page.locator("#deliveries")).to_contain_text("Answered 200.")
    expect(page.get_by_text("Copy it into your receiver now")).to_have_count(0)
    assert serious_violations(page) == []
    page.get_by_role("link", name="Webhooks", exact=True).first.click()
    expect(page.get_by_role("link", name=receiver.url())).to_be_visible()
    assert serious_violations(page) == []

    page.get_by_role("link", name="Videos").click()
    paste_links(page, [share_link(1)])
    wait_for(receiver, 3)  # the video done, then its batch

    types = sorted(arrived.verify(secret)["type"] for arrived in receiver.received)
    assert types == ["batch.finished", "job.succeeded", "webhook.test"]
    [done] = [r.verify(secret) for r in receiver.received if "job.succeeded" in r.body.decode()]
    assert done["data"]["job"]["link"] == share_link(1)
    assert done["data"]["job"]["has_result"] is True
