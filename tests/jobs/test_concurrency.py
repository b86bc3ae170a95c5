"""Bob and Carol, both in Acme, submitting videos at the same moment through the real
submission path: they share one balance and nobody's limit is passed.

PostgreSQL only: that is where writers truly run at once (SQLite serialises them).
"""

import threading
import uuid

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections, transaction

from apps.accounts.models import Membership, Team, User
from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry, Wallet
from apps.jobs import dispatcher, submission
from apps.jobs.limits import MonthlyLimitReached
from apps.jobs.models import Job
from apps.removal.alerts import record as record_provider_alert
from apps.removal.base import ProviderUnavailable
from apps.removal.models import ProviderAlert
from tests.threads import AvailableWatcher, run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 20


def link(n: int) -> str:
    return f"https://sora.chatgpt.com/p/s_{n:032x}"


def in_team(team: Team, person: User) -> Membership:
    return Membership.objects.select_related("team", "user").get(team=team, user=person)


def fund(team: Team, credits: int) -> None:
    ledger.grant(team=team, credits=credits, key=f"promo:{team.pk}", memo="Credits to race for")


def test_two_members_submitting_at_once_never_spend_more_than_the_team_has(acme, bob, carol):
    fund(acme, 50)  # five videos
    turns = [in_team(acme, bob), in_team(acme, carol)]

    def submit(i: int) -> list[Job]:
        return submission.submit_jobs(membership=turns[i % 2], links=[link(i)])

    with AvailableWatcher(acme) as watcher:
        results = run_at_once(RACERS, submit)

    submitted = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, ledger.InsufficientCredits)]
    assert (len(submitted), len(refused)) == (5, 15), results
    assert Job.objects.filter(team=acme).count() == 5
    assert LedgerEntry.objects.filter(team=acme, kind=EntryKind.HOLD).count() == 5
    wallet = Wallet.objects.get(team=acme)
    assert (wallet.balance, wallet.held, wallet.available) == (50, 50, 0)
    assert watcher.lowest is not None
    assert watcher.lowest >= 0
    call_command("reconcile")  # raises CommandError on any drift


def test_a_submission_that_does_not_fit_creates_nothing_even_under_contention(acme, bob, carol):
    fund(acme, 50)  # one paste of three videos fits, a second one does not
    turns = [in_team(acme, bob), in_team(acme, carol)]

    def submit(i: int) -> list[Job]:
        return submission.submit_jobs(
            membership=turns[i % 2], links=[link(3 * i), link(3 * i + 1), link(3 * i + 2)]
        )

    results = run_at_once(10, submit)

    [submitted] = [r for r in results if isinstance(r, list)]
    assert all(isinstance(r, ledger.InsufficientCredits) for r in results if r is not submitted)
    assert sorted(Job.objects.filter(team=acme).values_list("pk", flat=True)) == sorted(
        job.pk for job in submitted
    )
    assert Wallet.objects.get(team=acme).available == 20
    call_command("reconcile")  # raises CommandError on any drift


def test_a_members_monthly_limit_holds_when_she_submits_many_times_at_once(acme, bob, carol):
    fund(acme, 10_000)
    Membership.objects.filter(team=acme, user=carol).update(
        monthly_credit_limit=3 * settings.CREDITS_PER_VIDEO
    )
    turns = [in_team(acme, bob), in_team(acme, carol)]

    def submit(i: int) -> list[Job]:
        return submission.submit_jobs(membership=turns[i % 2], links=[link(i)])

    results = run_at_once(RACERS, submit)

    limited = [r for r in results if isinstance(r, MonthlyLimitReached)]
    assert len(limited) == RACERS // 2 - 3, results
    assert Job.objects.filter(team=acme, created_by=carol).count() == 3
    assert Job.objects.filter(team=acme, created_by=bob).count() == RACERS // 2  # no limit
    assert Wallet.objects.get(team=acme).held == (3 + RACERS // 2) * settings.CREDITS_PER_VIDEO
    call_command("reconcile")  # raises CommandError on any drift


def test_every_provider_refusal_is_counted_when_workers_report_at_once():
    refusals = run_at_once(
        12,
        lambda i: record_provider_alert(
            "kie", ProviderUnavailable("Service under maintenance", kind="maintenance")
        ),
    )

    assert not [outcome for outcome in refusals if isinstance(outcome, Exception)]
    alert = ProviderAlert.objects.get()
    assert (alert.kind, alert.occurrences, alert.resolved_at) == ("maintenance", 12, None)


def test_one_form_sent_ten_times_at_once_makes_its_jobs_once(acme, bob):
    """The database, not a cache entry, refuses the copies: one set of jobs, one hold each."""
    fund(acme, 1000)
    form_id = uuid.uuid4()
    bobs = in_team(acme, bob)

    def send(i: int) -> list[Job]:
        return submission.submit_jobs(membership=bobs, links=[link(1), link(2)], submission=form_id)

    results = run_at_once(10, send)

    made = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, submission.AlreadySubmitted)]
    assert (len(made), len(refused)) == (1, 9), results
    assert all([job.pk for job in r.jobs] == [job.pk for job in made[0]] for r in refused)
    assert Job.objects.filter(team=acme, submission_id=form_id).count() == 2
    assert LedgerEntry.objects.filter(team=acme, kind=EntryKind.HOLD).count() == 2
    assert ledger.available_credits(acme) == 980
    call_command("reconcile")  # raises CommandError on any drift


def test_the_poller_skips_a_job_whose_row_another_transaction_holds(alice_membership):
    held, free = submission.submit_jobs(membership=alice_membership, links=[link(1), link(2)])
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                Job.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(timeout=10)  # a poller that waits for it gets it after this
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        handed = dispatcher.poll_due_jobs(run_seconds=0)
        still_held = holder.is_alive()
    finally:
        release.set()
        holder.join()

    assert still_held  # the round ended while the row was held: nothing waited for it
    assert handed == 1
    # Only the free one was claimed: its next check moved on, the held one's did not.
    due = dict(Job.objects.filter(pk__in=[held.pk, free.pk]).values_list("pk", "next_check_at"))
    assert due[held.pk] == held.next_check_at
    assert due[free.pk] != free.next_check_at
