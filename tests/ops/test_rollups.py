"""The operations page's daily roll-ups: the same figures as the live rows they replace, kept
up to date by the workers as closed days end and their jobs change, read for closed days only."""

import io
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models import Sum

from apps import taskqueue
from apps.billing import ledger
from apps.billing.models import TopUp, TopUpStatus
from apps.jobs.models import Job, JobState
from apps.ops import rollups
from apps.ops.figures import Period, build
from apps.ops.models import DayDurations, DayJobs, RolledDay
from apps.ops.tasks import refresh_rollups
from apps.schema import AddIndexConcurrently
from tests.factories import make_job

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
TODAY = NOW.date()


@pytest.fixture
def week(alice, acme) -> dict[str, Job]:
    """A week of videos on Kie and the SWC pool, every state and a few failure codes, with
    costs, a signing failure, top-ups, a clawback and captures; some today."""
    team = alice.memberships.get(team__is_personal=True).team
    jobs: dict[str, Job] = {}
    with time_machine.travel(NOW, tick=False):
        for days_ago in range(6, -1, -1):
            at = NOW - timedelta(days=days_ago, hours=days_ago % 3)
            for n, (state, provider, code) in enumerate([
                (JobState.SUCCEEDED, "kie", ""),
                (JobState.EXPIRED, "swc", ""),
                (JobState.FAILED, "kie", "fail"),
                (JobState.FAILED, "swc", "signing" if days_ago % 2 else "error"),
                (JobState.CANCELED, "kie", ""),
                (JobState.SUCCEEDED, "swc", ""),
            ]):  # fmt: skip
                sent = state != JobState.CANCELED
                jobs[f"{days_ago}-{n}"] = make_job(
                    acme if n % 2 else team, state=state, provider=provider,
                    created_at=at + timedelta(minutes=n),
                    waited=1.5 * n + days_ago if sent else None,
                    took=10.25 * (n + 1) + days_ago if sent else None,
                    cost_micros=20_000 + n if sent and n != 1 else None, failure_code=code,
                    server=f"http://gpu{n % 2}:5344" if provider == "swc" else "",
                )  # fmt: skip
            topup = TopUp.objects.create(
                team=team, credits=1000, amount_cents=500 + days_ago, status=TopUpStatus.PAID,
                paid_at=at, checkout_session_id=f"cs_{days_ago}",
            )  # fmt: skip
            with time_machine.travel(at, tick=False):
                ledger.credit_topup(topup=topup)
                if days_ago == 4:
                    ledger.clawback(team=team, credits=300, key="clawback:re_1", topup=topup,
                                    memo="Refund")  # fmt: skip
                hold = jobs[f"{days_ago}-0"]
                ledger.hold(team=team, credits=10, key=f"hold:job:{hold.pk}", job=hold)
                ledger.capture(job=hold)
    return jobs


def figures_rows(first: date, last: date) -> list[tuple[str, str, str, object]]:
    with time_machine.travel(NOW, tick=False):
        return list(build(Period(first, last)).rows())


def test_rolled_up_days_show_the_same_figures_as_the_live_rows(week):
    first = TODAY - timedelta(days=6)
    live = figures_rows(first, TODAY)

    with time_machine.travel(NOW, tick=False):
        rolled = rollups.refresh()

    assert rolled == [first + timedelta(days=n) for n in range(6)]  # every closed day, not today
    assert RolledDay.objects.count() == 6
    assert DayJobs.objects.filter(day=first, state=JobState.FAILED).count() == 2
    assert figures_rows(first, TODAY) == live
    # Spot checks that the comparison compares something.
    figures = {(s, subject, m): v for s, subject, m, v in live}
    assert figures["outcomes", "all", "videos"] == 42
    assert figures["failures", "fail", "videos"] == 7
    assert figures["timings", "all", "videos"] == 35
    assert figures["money", "topups", "count"] == 7


def test_closed_days_are_read_from_the_rollups_and_today_from_the_jobs(week):
    with time_machine.travel(NOW, tick=False):
        rollups.refresh()
    # Written behind the page's back (no `updated_at`), so only a live count would see it.
    Job.objects.filter(pk=week["3-0"].pk).update(provider="replicate")
    Job.objects.filter(pk=week["0-0"].pk).update(provider="replicate")

    figures = {(s, sub, m): v for s, sub, m, v in figures_rows(TODAY - timedelta(days=6), TODAY)}

    today = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC).isoformat()
    assert figures["videos_by_provider", today, "replicate"] == 1
    replicate = [
        v for (s, _, m), v in figures.items() if (s, m) == ("videos_by_provider", "replicate")
    ]
    assert [v for v in replicate if v] == [1]  # today's only


def test_a_job_that_changes_after_its_day_rolls_the_day_up_again(week):
    job = week["3-0"]
    day = job.created_at.astimezone(UTC).date()
    later = NOW + timedelta(hours=1)
    with time_machine.travel(later, tick=False):
        rollups.refresh()
    assert DayJobs.objects.get(day=day, state=JobState.SUCCEEDED, provider="kie").jobs == 1

    with time_machine.travel(later + timedelta(minutes=1), tick=False):
        job.move(JobState.EXPIRED)
        assert rollups.refresh() == [day]

    assert not DayJobs.objects.filter(day=day, state=JobState.SUCCEEDED, provider="kie").exists()
    assert DayJobs.objects.get(day=day, state=JobState.EXPIRED, provider="kie").jobs == 1
    with time_machine.travel(later + timedelta(minutes=2), tick=False):
        # Once more: a change stamped just before a refresh may commit just after it.
        assert rollups.refresh() == [day]
    with time_machine.travel(later + timedelta(minutes=5), tick=False):
        assert rollups.refresh() == []  # nothing changed since


def test_a_day_is_rolled_up_once_it_is_over(week):
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        rollups.refresh()
    assert not RolledDay.objects.filter(day=TODAY).exists()

    just_after_midnight = datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), UTC)
    with time_machine.travel(just_after_midnight + timedelta(minutes=1), tick=False):
        assert rollups.refresh() == [TODAY]

    assert DayJobs.objects.filter(day=TODAY).aggregate(n=Sum("jobs"))["n"] == 6


def test_rolling_up_again_gives_the_same_rows(week):
    def snapshot() -> list[tuple[object, ...]]:
        groups = DayJobs.objects.order_by("day", "provider", "state", "failure_code", "server")
        durations = DayDurations.objects.order_by("day", "provider")
        return [
            *groups.values_list(*(f.name for f in DayJobs._meta.fields if f.name != "id")),
            *((day, p, bytes(a), bytes(b)) for day, p, a, b in durations.values_list(
                "day", "provider", "waits", "works")),
        ]  # fmt: skip

    with time_machine.travel(NOW, tick=False):
        rollups.refresh()
        once = snapshot()
        rollups.refresh(rebuild=True)

    assert snapshot() == once
    assert RolledDay.objects.count() == 6


def test_the_workers_roll_up_every_minute_and_staff_can_backfill(week):
    assert taskqueue.SCHEDULES["apps.ops.tasks.refresh_rollups"][1] == 1

    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert len(refresh_rollups()) == 6
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        call_command("rollup_ops", stdout=(out := io.StringIO()))
        assert out.getvalue() == "Every closed day was rolled up already.\n"
        call_command("rollup_ops", "--rebuild", stdout=out)

    assert out.getvalue().endswith(f"Rolled up 6 days, {TODAY - timedelta(days=6)} to "
                                   f"{TODAY - timedelta(days=1)}.\n")  # fmt: skip


def test_job_counts_add_the_rollups_to_today_s_jobs(week):
    live = {
        (state, provider): Job.objects.filter(state=state, provider=provider).count()
        for state, provider in Job.objects.values_list("state", "provider").distinct()
    }
    assert rollups.job_counts() == live  # nothing rolled up yet: all live

    with time_machine.travel(NOW, tick=False):
        rollups.refresh()

    assert rollups.job_counts() == live
    assert rollups.job_counts()[JobState.FAILED, "swc"] == 7


def test_the_ops_indexes_are_built_without_locking_writes_on_postgresql():
    loader = MigrationLoader(connection)
    built = (
        ("jobs", "0012_ops_indexes"),
        ("billing", "0005_ops_indexes"),
        ("jobs", "0016_job_changed_since"),
    )
    for app, name in built:
        migration = loader.get_migration(app, name)
        assert migration.atomic is False
        assert all(isinstance(op, AddIndexConcurrently) for op in migration.operations)


@pytest.mark.postgres
def test_the_minute_refresh_finds_the_changed_days_from_an_index_on_postgresql(week):
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        rollups.refresh()
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(connection.cursor().mogrify(sql, params))
        return execute(sql, params, many, context)

    with (
        time_machine.travel(NOW + timedelta(hours=2), tick=False),
        connection.execute_wrapper(record),
    ):
        rollups.refresh()
    [changed] = [sql for sql in statements if '"updated_at" >' in sql]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the test table is tiny
        cursor.execute(f"EXPLAIN {changed}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "job_changed_since" in plan
