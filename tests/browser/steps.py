"""What people do in the journeys, written once: sign up, paste links, read the balance."""

import hashlib
import re

from django.core import mail
from playwright.sync_api import Locator, Page, expect

PASSWORD = "a-long-and-uncommon-pass-phrase"
# How long a video may take from paste to "Done": the simulator needs about a second, the
# worker process a few more to start and to save the result.
JOB_TIMEOUT_MS = 60_000


def share_link(n: int) -> str:
    """A public Sora share link, different for every `n`, with an id as random-looking as Sora's
    (ids that differ only at the end would all look alike where the page shortens them)."""
    return f"https://sora.chatgpt.com/p/s_{hashlib.sha256(str(n).encode()).hexdigest()[:32]}"


def sign_up(page: Page, email: str) -> None:
    """Fills in the sign-up form the page shows, and waits until the person is signed in."""
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".user-menu summary")).to_have_text(email)


def balance_chip(page: Page) -> Locator:
    """The header's "N available · M reserved" link (with "· low" when low): the team's credits."""
    return page.locator("#balance-chip")


def paste_links(page: Page, lines: list[str]) -> None:
    """Pastes lines into the dashboard's form, confirms ownership (asked only once per person)
    and sends them."""
    links_box = page.locator("details.links-box")
    if not links_box.evaluate("box => box.open"):
        links_box.locator("summary").click()
    page.get_by_label("Sora share links").fill("\n".join(lines))
    ownership = page.get_by_label("I own these videos or have the right to edit them")
    if ownership.count():
        ownership.check()
    page.get_by_role("button", name="Remove watermarks").click()


def job_row(page: Page, link: str) -> Locator:
    """The dashboard's table row of the video with this share link."""
    video_id = link.rsplit("/", 1)[1]
    return page.locator("#jobs-table tbody tr").filter(
        has=page.get_by_role("link", name=video_id, exact=True)
    )


def link_in_email(to: str, pattern: str) -> str:
    """The first link matching `pattern` in the newest email sent to `to` (locmem outbox)."""
    for message in reversed(mail.outbox):
        if to in message.to and (found := re.search(pattern, str(message.body))):
            return found.group(0)
    raise AssertionError(f"no email to {to} with a link like {pattern!r}")


def sideways_overflow(page: Page) -> int:
    """How many CSS pixels wider than the screen the page is."""
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
