"""The operations page: staff only, its figures right (from the same function as its CSV), its
percentiles the same on PostgreSQL and SQLite, and a slow provider never slowing it down."""

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apps.billing import ledger
from apps.billing.models import TopUp, TopUpStatus
from apps.jobs.models import Job, JobState
from apps.ops.counts import live_durations
from apps.ops.figures import Period, Timing, percentile_cont
from apps.removal.models import ProviderAlert, SwcServer
from tests.factories import make_job
from tests.test_security import ScriptsAndStyles

pytestmark = pytest.mark.django_db

OPS = reverse("ops:overview")
CSV = reverse("ops:figures_csv")


def csv_figures(response) -> dict[tuple[str, str, str], str]:
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["section", "subject", "measure", "value"]
    return {(section, subject, measure): value for section, subject, measure, value in rows[1:]}


@pytest.fixture
def history(alice, acme) -> dict[str, Job]:
    """A day of Alice's and Acme's videos: on Kie, two done (waited 10 and 30 s, took 60 and
    100 s), one failed; on the SWC pool, one done and one being cleaned; two waiting."""
    now = timezone.now()
    team = alice.memberships.get(team__is_personal=True).team
    return {
        "done_fast": make_job(team, state=JobState.SUCCEEDED, created_at=now - timedelta(hours=3),
                              waited=10, took=60, cost_micros=25_000),
        "done_slow": make_job(acme, state=JobState.SUCCEEDED, created_at=now - timedelta(hours=2),
                              waited=30, took=100, cost_micros=25_000),
        "failed": make_job(acme, state=JobState.FAILED, created_at=now - timedelta(hours=2),
                           waited=20, took=5, failure_code="fail"),
        "swc_done": make_job(team, state=JobState.SUCCEEDED, provider="swc",
                             created_at=now - timedelta(hours=1), waited=2, took=40,
                             server="http://gpu1:5344"),
        "swc_busy": make_job(team, state=JobState.PROCESSING, provider="swc",
                             created_at=now - timedelta(minutes=5), waited=1,
                             server="http://gpu1:5344"),
        "waiting_old": make_job(acme, created_at=now - timedelta(minutes=30)),
        "waiting_new": make_job(acme, created_at=now - timedelta(minutes=1)),
    }  # fmt: skip


def test_anonymous_visitors_are_asked_to_sign_in(client):
    response = client.get(OPS)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_people_who_are_not_staff_get_404_not_a_sign_in_loop(login, alice, charlie):
    for person in (alice, charlie):
        browser = login(person)
        assert browser.get(OPS).status_code == 404
        assert browser.get(CSV).status_code == 404


def test_staff_without_two_factor_are_sent_to_set_it_up_where_the_admin_asks_for_it(
    staff_client, settings
):
    settings.STAFF_REQUIRE_MFA = True

    response = staff_client.get(OPS)

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_index")


def test_staff_see_volume_outcomes_failures_and_the_queue(staff_client, history):
    page = staff_client.get(OPS)

    assert page.status_code == 200
    figures = page.context["figures"]
    assert figures.videos == 7
    assert (figures.succeeded, figures.failed) == (3, 1)
    assert figures.overall_success_rate == 0.75
    assert [(f.code, f.count) for f in figures.failures] == [("fail", 1)]
    text = page.text
    assert "75.0%" in text
    assert "Failed: fail" in text
    queue = {row.provider: row for row in figures.waiting}
    assert queue["kie"].queued == 2
    assert queue["kie"].in_flight == 0
    assert queue["swc"].in_flight == 1
    assert 29 * 60 < (queue["kie"].oldest_seconds or 0) < 31 * 60


def test_waiting_and_processing_percentiles_are_those_of_the_videos_that_ended(
    staff_client, history
):
    figures = staff_client.get(OPS).context["figures"]

    # Waits of the four videos that ended: 2, 10, 20, 30 s; processing 40, 60, 5, 100 s.
    assert figures.timing.count == 4
    assert figures.timing.wait_p50 == pytest.approx(15.0)
    assert figures.timing.wait_p95 == pytest.approx(20 + 0.85 * 10)
    assert figures.timing.work_p50 == pytest.approx(50.0)
    assert figures.timing.work_p95 == pytest.approx(60 + 0.85 * 40)
    assert figures.timing_by_provider["kie"].count == 3
    assert figures.timing_by_provider["swc"].wait_p50 == pytest.approx(2.0)
    # Every ended video is in the chart's bucket of the day it was submitted.
    assert sum(timing.count for timing in figures.timing_by_bucket) == 4
    today = figures.buckets.index(
        datetime.combine(
            history["done_fast"].created_at.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC
        )
    )
    assert figures.timing_by_bucket[today].count >= 1


def test_percentiles_match_postgresql_s_definition(alice):
    team = alice.memberships.get().team
    start = timezone.now() - timedelta(hours=1)
    waits = [7, 1, 19, 3, 11, 2, 5, 13, 17, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67]
    for wait in waits:
        make_job(team, state=JobState.SUCCEEDED, created_at=start, waited=wait, took=2 * wait)

    result = Timing.of(live_durations(start, start + timedelta(hours=2), "day"))

    ranked = sorted(float(w) for w in waits)
    assert result.count == 20
    assert result.wait_p50 == pytest.approx(percentile_cont(ranked, 0.5))
    assert result.wait_p50 == pytest.approx((23 + 29) / 2)  # the 10th and 11th of 20
    assert result.wait_p95 == pytest.approx(61 + 0.05 * (67 - 61))
    assert result.work_p95 == pytest.approx(2 * (61 + 0.05 * (67 - 61)))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY w) FROM unnest(%s) AS w",
                [ranked],
            )
            assert cursor.fetchone()[0] == result.wait_p95


def test_the_pool_shows_each_server_busy_idle_or_down(staff_client, history, settings):
    settings.SWC_SERVERS = [
        {"url": url, "authorization": ""}
        for url in ("http://gpu1:5344", "http://gpu2:5344", "http://gpu3:5344")
    ]
    SwcServer.objects.get_or_create(url="http://gpu1:5344")  # the history has a video on it
    SwcServer.objects.create(url="http://gpu2:5344")
    SwcServer.objects.create(url="http://gpu3:5344", healthy=False, down_reason="not answering")
    SwcServer.objects.create(url="http://old:5344")

    figures = staff_client.get(OPS).context["figures"]

    pool = {server.url: server for server in figures.pool}
    assert pool["http://gpu1:5344"].status == "busy"
    assert (pool["http://gpu1:5344"].busy, pool["http://gpu1:5344"].done) == (1, 1)
    assert pool["http://gpu2:5344"].status == "idle"
    assert pool["http://gpu3:5344"].status == "down"
    assert pool["http://old:5344"].status == "removed"


def test_videos_per_hour_count_only_the_hours_of_the_period_that_have_passed(
    staff_client, alice, settings
):
    settings.SWC_SERVERS = [{"url": "http://gpu1:5344", "authorization": ""}]
    SwcServer.objects.create(url="http://gpu1:5344")
    team = alice.memberships.get(team__is_personal=True).team
    # 06:00 today: the last 7 days have had 6 x 24 + 6 hours so far, not 7 x 24.
    six_am = datetime.combine(timezone.now().astimezone(UTC).date(), time(6), tzinfo=UTC)
    with time_machine.travel(six_am, tick=False):
        for hours_ago in range(1, 4):
            created_at = six_am - timedelta(hours=hours_ago)
            make_job(team, state=JobState.SUCCEEDED, provider="swc", waited=1, took=30,
                     created_at=created_at, server="http://gpu1:5344")  # fmt: skip
        [server] = staff_client.get(OPS).context["figures"].pool

    assert server.done == 3
    assert server.per_hour == pytest.approx(3 / 150)


def test_money_counts_top_ups_less_refunds_against_provider_spend(staff_client, alice, history):
    team = alice.memberships.get(team__is_personal=True).team
    topup = TopUp.objects.create(
        team=team, credits=1000, amount_cents=500, status=TopUpStatus.PAID,
        checkout_session_id="cs_paid", paid_at=timezone.now(),
    )  # fmt: skip
    ledger.credit_topup(topup=topup)
    ledger.clawback(team=team, credits=400, key="clawback:re_1", topup=topup, memo="Refund")
    job = make_job(team, state=JobState.SUCCEEDED, waited=1, took=1)
    ledger.hold(team=team, credits=10, key=f"hold:job:{job.pk}", job=job)
    ledger.capture(job=job)

    page = staff_client.get(OPS)

    money = page.context["figures"].money
    assert money.topups == 1
    assert money.topups_micros == 5_000_000
    assert money.clawbacks_micros == 2_000_000  # 400 of 1,000 credits bought for $5
    assert money.used_credits == 10
    assert money.used_micros == 50_000
    # Two Kie videos priced at $0.025; Kie's failure and the SWC videos have no recorded cost.
    assert money.spend_micros == 50_000
    assert money.unpriced == 3
    assert money.cash_margin_micros == 3_000_000 - 50_000
    assert "$2.95" in page.text
    assert "3 videos have no recorded provider cost" in page.text


def test_credits_outstanding_are_every_team_s_balance_and_holds(staff_client, alice, acme):
    team = alice.memberships.get(team__is_personal=True).team
    job = make_job(team, state=JobState.PROCESSING, waited=1)
    ledger.hold(team=team, credits=10, key=f"hold:job:{job.pk}", job=job)

    page = staff_client.get(OPS)

    outstanding = page.context["figures"].outstanding
    # The sign-up credits of Alice, Bob, Carol and Olive (Acme itself got none).
    assert outstanding.balance == 4 * 30
    assert outstanding.held == 10
    assert outstanding.micros == 120 * 5_000


def test_open_alerts_are_listed(staff_client):
    ProviderAlert.objects.create(provider="kie", kind="paused", message="Kie paused Sora.")
    ProviderAlert.objects.create(
        provider="kie", kind="maintenance", message="Old one.", resolved_at=timezone.now()
    )

    page = staff_client.get(OPS)

    assert [a.kind for a in page.context["figures"].alerts] == ["paused"]
    assert "Kie paused Sora." in page.text
    assert "Old one." not in page.text


def test_the_kie_balance_comes_from_kie(staff_client, kie_simulator):
    page = staff_client.get(OPS)

    [kie] = page.context["figures"].balances
    assert (kie.provider, kie.balance.credits) == ("kie", 123_450)
    assert "123,450" in page.text


def test_a_kie_that_does_not_answer_shows_unknown_without_holding_the_page(
    staff_client, kie_simulator
):
    kie_simulator.configure(api_delay_seconds=3)

    page = staff_client.get(OPS)

    assert page.context["figures"].balances[0].balance.credits is None
    assert "no answer within 0.5 s" in page.text
    assert 'data-testid="kie-balance">Unknown' in page.text


def test_the_csv_holds_the_same_figures_as_the_page(staff_client, history):
    page = staff_client.get(OPS)
    response = staff_client.get(CSV)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="unmark-ops-')
    figures = csv_figures(response)
    shown = page.context["figures"]
    assert figures["outcomes", "all", "videos"] == str(shown.videos) == "7"
    assert figures["outcomes", "all", "success_rate"] == "0.75"
    assert figures["failures", "fail", "videos"] == "1"
    assert figures["timings", "all", "wait_p50_seconds"] == "15.0"
    assert figures["queue", "kie", "waiting"] == "2"
    assert figures["money", "spend_kie", "usd"] == "0.05"
    assert figures["money", "spend_kie", "videos_without_cost"] == "1"

    def total(section: str, measure: str) -> int:
        return sum(int(v) for (s, _, m), v in figures.items() if (s, m) == (section, measure))

    assert total("videos_by_state", "succeeded") == 3
    assert total("videos_by_provider", "swc") == 2
    day = history["swc_busy"].created_at.astimezone(UTC).date()
    bucket = datetime.combine(day, datetime.min.time(), tzinfo=UTC).isoformat()
    assert figures["videos_by_state", bucket, "processing"] == "1"


def test_a_short_range_is_shown_by_hour(staff_client, history):
    today = timezone.now().astimezone(UTC).date()
    yesterday = today - timedelta(days=1)  # the history's last three hours may cross midnight

    page = staff_client.get(OPS, {"first": yesterday.isoformat(), "last": today.isoformat()})

    figures = page.context["figures"]
    assert figures.period.bucket == "hour"
    assert len(figures.buckets) == 48
    assert sum(s.total for s in figures.by_state) == 7
    assert sum(timing.count for timing in figures.timing_by_bucket) == 4
    assert "Videos per hour by state" in page.text


def test_days_outside_the_range_are_left_out(staff_client, alice):
    team = alice.memberships.get().team
    make_job(team, created_at=datetime(2026, 3, 1, 23, 59, tzinfo=UTC))
    make_job(team, created_at=datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    make_job(team, created_at=datetime(2026, 3, 3, 0, 0, tzinfo=UTC))

    page = staff_client.get(OPS, {"first": "2026-03-02", "last": "2026-03-02"})

    assert page.context["figures"].videos == 1


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"first": "2026-03-05", "last": "2026-03-01"}, "on or after the first day"),
        ({"first": "2020-01-01", "last": "2026-03-01"}, "at most 366 days"),
        ({"first": "yesterday"}, "Enter a valid date"),
    ],
)
def test_bad_dates_are_refused_with_the_reason(staff_client, query, error):
    page = staff_client.get(OPS, query)
    export = staff_client.get(CSV, query)

    assert page.status_code == 400
    assert error in page.text
    assert "figures" not in page.context
    assert export.status_code == 400
    assert error in export.text


def test_the_page_keeps_to_the_content_security_policy(staff_client, history):
    page = staff_client.get(OPS)

    assert "script-src 'self' 'nonce-" in page["Content-Security-Policy"]
    found = ScriptsAndStyles()
    found.feed(page.text)
    assert (found.scripts_without_nonce, found.inline_styles, found.inline_handlers) == ([], [], [])
    assert page.text.count('<svg class="chart-svg"') == 5
    assert page.text.count('role="img"') == 5


def test_staff_find_the_page_in_their_menu(staff_client, login, alice):
    assert f'href="{OPS}"' in staff_client.get(reverse("accounts:teams")).text
    assert f'href="{OPS}"' not in login(alice).get(reverse("accounts:teams")).text


def test_a_period_covers_whole_utc_days():
    period = Period(date(2026, 3, 1), date(2026, 3, 7))

    assert period.start == datetime(2026, 3, 1, tzinfo=UTC)
    assert period.end == datetime(2026, 3, 8, tzinfo=UTC)
    assert period.bucket == "day"
    assert len(period.buckets()) == 7
    with time_machine.travel(datetime(2026, 4, 1, tzinfo=UTC)):
        assert period.hours_so_far == 7 * 24
    with time_machine.travel(datetime(2026, 3, 7, 6, 30, tzinfo=UTC), tick=False):
        assert period.hours_so_far == 6 * 24 + 6.5
    with time_machine.travel(datetime(2026, 2, 1, tzinfo=UTC)):
        assert period.hours_so_far == 0


def test_results_signed_and_signing_failures_are_counted(staff_client, history):
    signed = {"issuer": "Unmark", "ai_generated": True}  # what a signed result records
    Job.objects.filter(pk__in=[history["done_fast"].pk, history["swc_done"].pk]).update(
        credentials=signed
    )
    Job.objects.filter(pk=history["failed"].pk).update(failure_code="signing")

    page = staff_client.get(OPS)
    csv_rows = staff_client.get(CSV).text.splitlines()

    figures = page.context["figures"]
    assert (figures.signing.signed, figures.signing.failed) == (2, 1)
    assert 'data-testid="signed">2<' in page.text
    assert "1 video failed (refunded) because its result could not be signed" in page.text
    assert "content_credentials,results,signed,2" in csv_rows
    assert "content_credentials,results,signing_failed,1" in csv_rows
