"""The monthly credit limit per member, which job submission checks before holding credits."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction

from apps.accounts import services
from apps.accounts.models import Membership, Role
from apps.jobs.limits import (
    MonthlyLimitReached,
    check_monthly_limit,
    credits_used_this_month,
    credits_used_this_month_by_member,
)
from apps.jobs.models import Job, JobState
from tests.accounts.helpers import membership

MID_NOVEMBER = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def submit_job(team, user, *, credits=10, state=JobState.QUEUED) -> Job:
    return Job.objects.create(
        team=team,
        created_by=user,
        source_url="https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef",
        provider="kie",
        credits=credits,
        state=state,
    )


def with_limit(team, user, limit: int | None) -> Membership:
    Membership.objects.filter(team=team, user=user).update(monthly_credit_limit=limit)
    return membership(team, user)


def check(member: Membership, credits: int) -> None:
    with transaction.atomic():
        check_monthly_limit(membership=member, credits=credits)


@pytest.mark.django_db
def test_usage_counts_this_months_charged_jobs_of_the_member_in_the_team(acme, bob, carol):
    with time_machine.travel(datetime(2026, 10, 31, 23, 59, tzinfo=UTC)):
        submit_job(acme, carol)  # last month
    with time_machine.travel(MID_NOVEMBER):
        submit_job(acme, carol, state=JobState.SUCCEEDED)
        submit_job(acme, carol, state=JobState.DOWNLOADING)
        submit_job(acme, carol, state=JobState.EXPIRED)
        submit_job(acme, carol, state=JobState.FAILED)
        submit_job(acme, carol, state=JobState.CANCELED)
        submit_job(acme, bob, credits=50)

        assert credits_used_this_month(membership=membership(acme, carol)) == 30
        assert credits_used_this_month_by_member(team=acme) == {carol.pk: 30, bob.pk: 50}


@pytest.mark.django_db
def test_without_a_limit_anything_goes(acme, carol):
    submit_job(acme, carol, credits=10_000)

    check(membership(acme, carol), 10_000)


@pytest.mark.django_db
def test_a_submission_that_fits_the_limit_passes(acme, carol):
    carols = with_limit(acme, carol, 100)
    for _ in range(9):
        submit_job(acme, carol)

    check(carols, 10)


@pytest.mark.django_db
def test_a_submission_past_the_limit_is_refused_with_what_is_left(acme, carol):
    carols = with_limit(acme, carol, 100)
    for _ in range(6):
        submit_job(acme, carol)

    with pytest.raises(MonthlyLimitReached) as reached:
        check(carols, 50)

    assert (reached.value.limit, reached.value.used, reached.value.remaining) == (100, 60, 40)
    assert str(reached.value) == (
        "Your 5 videos need 50 credits; you can use 40 more credits (4 videos) this month."
    )


@pytest.mark.django_db
def test_a_spent_limit_says_when_it_resets(acme, carol):
    carols = with_limit(acme, carol, 20)
    with time_machine.travel(MID_NOVEMBER):
        submit_job(acme, carol, credits=20)

        with pytest.raises(MonthlyLimitReached) as reached:
            check(carols, 10)

    assert reached.value.remaining == 0
    assert str(reached.value) == (
        "You have used all of your monthly limit of 2 videos (20 credits). It resets on 1 December."
    )


@pytest.mark.django_db
def test_a_zero_limit_stops_every_submission(acme, carol):
    with pytest.raises(MonthlyLimitReached):
        check(with_limit(acme, carol, 0), 10)


@pytest.mark.django_db
def test_the_limit_is_per_team(acme, carol):
    with_limit(acme, carol, 10)
    personal = Membership.objects.get(user=carol, team__is_personal=True)
    submit_job(acme, carol)

    check(personal, 100)


@pytest.mark.django_db
def test_the_limit_starts_afresh_each_month(acme, carol):
    carols = with_limit(acme, carol, 10)
    with time_machine.travel(MID_NOVEMBER):
        submit_job(acme, carol)
    with time_machine.travel(datetime(2026, 12, 1, 0, 0, tzinfo=UTC)):
        check(carols, 10)


@pytest.mark.django_db(transaction=True)  # no test-wide transaction around it
def test_the_check_must_run_inside_the_submissions_transaction(acme, carol):
    with pytest.raises(transaction.TransactionManagementError):
        check_monthly_limit(membership=with_limit(acme, carol, 100), credits=10)


# --- Under real concurrency (PostgreSQL) ---------------------------------------------------


def _wait_until_someone_waits_for_a_row_lock() -> None:
    """Polls PostgreSQL's lock table (bounded), so the race below always runs the same way."""
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)


def race(first: Callable[[], object], second: Callable[[], object]) -> tuple[object, object]:
    """Runs `first` in a transaction and, while that is still open, `second` in another one.

    `first` commits only once `second` waits for a lock, so without the lock both would run
    on the same stale view of the data. Returns what each returned or raised.
    """
    results: dict[str, object] = {}
    first_did_its_work = threading.Event()
    first_may_commit = threading.Event()

    def run(name: str, work: Callable[[], object], before_commit: Callable[[], None]) -> None:
        try:
            with transaction.atomic():
                results[name] = work()
                before_commit()
        except Exception as error:
            results[name] = error
        finally:
            first_did_its_work.set()
            connection.close()

    def hold_until_told() -> None:
        first_did_its_work.set()
        first_may_commit.wait(timeout=30)

    one = threading.Thread(target=run, args=("first", first, hold_until_told))
    one.start()
    first_did_its_work.wait(timeout=30)
    two = threading.Thread(target=run, args=("second", second, lambda: None))
    two.start()
    _wait_until_someone_waits_for_a_row_lock()
    first_may_commit.set()
    one.join(timeout=30)
    two.join(timeout=30)
    return results["first"], results["second"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_submissions_by_one_member_at_once_can_not_both_pass_the_limit(acme, carol):
    carols = with_limit(acme, carol, 10)

    def submit() -> str:
        check_monthly_limit(membership=carols, credits=10)
        submit_job(acme, carol)
        return "submitted"

    first, second = race(submit, submit)

    assert first == "submitted"
    assert isinstance(second, MonthlyLimitReached)
    assert second.remaining == 0
    assert Job.objects.filter(created_by=carol).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner(acme, alice, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)
    alices, bobs = membership(acme, alice), membership(acme, bob)

    first, second = race(
        lambda: services.change_role(actor=alices, target=bobs, role=Role.ADMIN),
        lambda: services.change_role(actor=bobs, target=alices, role=Role.ADMIN),
    )

    assert first is None
    assert isinstance(second, PermissionDenied)
    assert list(
        Membership.objects.filter(team=acme).filter(role=Role.OWNER).values_list("user", flat=True)
    ) == [alice.pk]
