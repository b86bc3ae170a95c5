"""The operations page in a real browser: a staff member signs in, opens it from the menu,
reads the figures and charts (and a chart's table), narrows the dates, downloads the CSV.
axe-core finds no serious problem and the Content-Security-Policy holds (the SVG charts need
no script and no inline style).

`UNMARK_SCREENSHOTS=1` saves the page at desktop and phone widths to `test-artifacts/ops-pages/`.
"""

import csv
import os
from collections.abc import Iterator
from datetime import UTC, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from apps.billing import ledger
from apps.billing.models import TopUp, TopUpStatus
from apps.jobs.models import JobState
from apps.removal import balance
from apps.removal.models import ProviderAlert, SwcServer
from apps.simulators.kie import KieSimulator, SimulatorConfig
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.browser.steps import sideways_overflow
from tests.factories import PASSWORD, UserFactory, make_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("UNMARK_SCREENSHOTS") == "1"
SCREENSHOT_DIR = ARTIFACTS / "ops-pages"


@pytest.fixture(autouse=True)
def _close_this_tests_connections(browser: Browser) -> Iterator[None]:
    """Closes the connection the test's own queries opened while Playwright's loop runs."""
    yield
    connections.close_all()


@pytest.fixture
def kie(settings) -> Iterator[KieSimulator]:
    simulator = KieSimulator(
        SimulatorConfig(api_key=settings.KIE_SIMULATOR_API_KEY, credits=987_650)
    ).start()
    settings.KIE_BASE_URL = simulator.url
    settings.KIE_API_KEY = settings.KIE_SIMULATOR_API_KEY
    balance.forget()
    yield simulator
    simulator.stop()
    balance.forget()


def seed_a_day_of_business() -> None:
    alice = UserFactory.create(email="alice@example.com")
    team = alice.memberships.get().team
    # Everything today (UTC), even a minute after midnight: the journey reads today's row.
    now = max(timezone.now(), timezone.now().replace(hour=0, minute=51, tzinfo=UTC))
    gpu1 = "http://gpu1:5344"
    for minutes, wait, took, cost in ((50, 4, 40, 20_000), (40, 8, 55, 20_000), (30, 2, 35, None)):
        at = now - timedelta(minutes=minutes)
        make_job(team, state=JobState.SUCCEEDED, provider="swc", server=gpu1, created_at=at,
                 waited=wait, took=took, cost_micros=cost)  # fmt: skip
    at = now - timedelta(minutes=20)
    make_job(team, state=JobState.FAILED, provider="swc", server=gpu1, created_at=at, waited=3,
             took=9, failure_code="error")  # fmt: skip
    at = now - timedelta(minutes=2)
    make_job(team, state=JobState.PROCESSING, provider="swc", server=gpu1, created_at=at, waited=1)
    make_job(team, created_at=now - timedelta(minutes=1))
    topup = TopUp.objects.create(
        team=team, credits=1000, amount_cents=500, status=TopUpStatus.PAID,
        checkout_session_id="cs_journey", paid_at=now,
    )  # fmt: skip
    ledger.credit_topup(topup=topup)
    SwcServer.objects.get_or_create(url="http://gpu1:5344")  # a video runs on it
    SwcServer.objects.create(url="http://gpu2:5344", healthy=False, down_reason="not answering")
    ProviderAlert.objects.create(provider="kie", kind="paused", message="Kie paused Sora removal.")


def check_page(page: Page, name: str) -> None:
    results = Axe().run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"{name}: {serious}"
    for width, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        assert sideways_overflow(page) == 0, f"{name} scrolls sideways at {width} width"
        if SCREENSHOTS:
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOT_DIR / f"{name}-{width}.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def test_staff_read_the_day_s_figures_and_take_them_away_as_csv(open_page, kie, settings, tmp_path):
    settings.SWC_SERVERS = [
        {"url": "http://gpu1:5344", "authorization": ""},
        {"url": "http://gpu2:5344", "authorization": ""},
    ]
    seed_a_day_of_business()
    UserFactory.create(email="olive@unmark.example", is_staff=True)
    page = open_page("olive")
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("olive@unmark.example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    page.locator(".user-menu summary").click()
    page.get_by_role("link", name="Operations").click()

    expect(page.get_by_role("heading", name="Operations", level=1)).to_be_visible()
    expect(page.get_by_test_id("videos")).to_have_text("6")
    expect(page.get_by_test_id("success-rate")).to_have_text("75.0%")
    expect(page.get_by_test_id("wait-p50")).to_have_text("3.5 s")
    expect(page.get_by_test_id("kie-balance")).to_have_text("987,650")
    expect(page.get_by_test_id("alerts")).to_contain_text("Kie paused Sora removal.")
    expect(page.get_by_test_id("unpriced")).to_contain_text(
        "2 videos have no recorded provider cost"
    )
    pool = page.get_by_test_id("pool")
    expect(pool.locator("tr", has_text="gpu1")).to_contain_text("busy")
    expect(pool.locator("tr", has_text="gpu2")).to_contain_text("down")
    expect(page.get_by_test_id("failures")).to_contain_text("error")
    expect(page.get_by_role("img", name="Videos per day by state")).to_be_visible()
    expect(page.locator("svg.chart-svg")).to_have_count(5)
    check_page(page, "ops-week")

    # Every chart has its numbers as a table, for those who do not see it.
    page.get_by_text("Videos per day by state: the figures as a table").click()
    today = timezone.now().astimezone(UTC)
    row = page.locator("#chart-states tbody tr", has_text=f"{today:%d %b}")
    expect(row).to_contain_text("3")

    # Yesterday and today: hour by hour.
    page.get_by_label("From", exact=True).fill(f"{today - timedelta(days=1):%Y-%m-%d}")
    page.get_by_label("To", exact=True).fill(f"{today:%Y-%m-%d}")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("img", name="Videos per hour by state")).to_be_visible()
    expect(page.get_by_test_id("videos")).to_have_text("6")
    check_page(page, "ops-two-days")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the figures (CSV)").click()
    saved = tmp_path / "figures.csv"
    download_info.value.save_as(saved)
    with saved.open() as lines:
        figures = {(row[0], row[1], row[2]): row[3] for row in csv.reader(lines)}
    assert figures["outcomes", "all", "videos"] == "6"
    assert figures["range", "utc", "bucket"] == "hour"
    assert figures["money", "topups", "usd"] == "5.00"
    assert figures["provider_balance", "kie", "credits"] == "987650"


def test_a_person_who_is_not_staff_finds_no_operations_page(open_page):
    UserFactory.create(email="charlie@example.com")
    page = open_page("charlie")
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("charlie@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator(".user-menu summary")).to_have_text("charlie@example.com")

    page.locator(".user-menu summary").click()
    expect(page.get_by_role("link", name="Operations")).to_have_count(0)
    response = page.goto("/ops/")
    assert response is not None
    assert response.status == 404
