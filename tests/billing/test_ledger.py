import pytest
from django.db import transaction

from apps.billing import ledger
from apps.billing.models import AppendOnlyError, EntryKind, LedgerEntry, Wallet
from apps.jobs.models import Job
from tests.billing.conftest import make_job

pytestmark = pytest.mark.django_db


def wallet_of(team) -> Wallet:
    return Wallet.objects.get(team=team)


def fund(team, credits: int) -> None:
    ledger.grant(team=team, credits=credits, key=f"test-fund:{team.pk}:{credits}", memo="Funding")


def test_a_new_team_has_an_empty_wallet(acme):
    wallet = wallet_of(acme)

    assert (wallet.balance, wallet.held, wallet.available) == (0, 0, 0)


def test_a_grant_adds_to_the_balance_once_per_key(acme):
    first = ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")
    again = ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")

    assert again == first
    assert wallet_of(acme).balance == 100
    assert LedgerEntry.objects.filter(team=acme).count() == 1


def test_reusing_a_key_for_a_different_movement_is_refused(acme):
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")

    with pytest.raises(ledger.KeyConflict):
        ledger.grant(team=acme, credits=500, key="promo:acme", memo="Bigger promo")

    assert wallet_of(acme).balance == 100


def test_a_hold_reserves_credits_without_spending_them(acme):
    fund(acme, 30)
    job = make_job(acme)

    entry = ledger.hold(team=acme, credits=10, key=f"hold:job:{job.pk}", job=job)

    wallet = wallet_of(acme)
    assert (wallet.balance, wallet.held, wallet.available) == (30, 10, 20)
    assert (entry.kind, entry.amount, entry.job) == (EntryKind.HOLD, 10, job)
    assert ledger.available_credits(acme) == 20


def test_a_hold_beyond_the_available_credits_says_how_many_are_missing(acme):
    fund(acme, 25)

    with pytest.raises(ledger.InsufficientCredits) as refused:
        ledger.hold(team=acme, credits=40, key="hold:too-much")

    assert (refused.value.needed, refused.value.available, refused.value.missing) == (40, 25, 15)
    assert wallet_of(acme).held == 0
    assert not LedgerEntry.objects.filter(kind=EntryKind.HOLD).exists()


def test_holding_for_jobs_reserves_each_jobs_credits(acme):
    fund(acme, 30)
    jobs = [make_job(acme), make_job(acme)]

    ledger.hold_for_jobs(team=acme, jobs=jobs)

    assert wallet_of(acme).held == 20
    holds = LedgerEntry.objects.filter(kind=EntryKind.HOLD).order_by("id")
    assert [(h.key, h.job_id, h.amount) for h in holds] == [
        (f"hold:job:{job.pk}", job.pk, 10) for job in jobs
    ]


def test_holding_for_jobs_is_all_or_nothing_and_rolls_back_the_callers_jobs(acme):
    fund(acme, 25)

    def submit_three_videos() -> None:
        # The job pipeline's pattern: create the jobs and hold for them in one transaction.
        with transaction.atomic():
            ledger.hold_for_jobs(team=acme, jobs=[make_job(acme) for _ in range(3)])

    with pytest.raises(ledger.InsufficientCredits) as refused:
        submit_three_videos()

    assert refused.value.missing == 5
    assert Job.objects.count() == 0
    assert wallet_of(acme).held == 0
    assert not LedgerEntry.objects.filter(kind=EntryKind.HOLD).exists()


def test_holding_for_the_same_jobs_twice_holds_once(acme):
    fund(acme, 30)
    jobs = [make_job(acme)]

    ledger.hold_for_jobs(team=acme, jobs=jobs)
    ledger.hold_for_jobs(team=acme, jobs=jobs)

    assert wallet_of(acme).held == 10


def test_a_frozen_team_cannot_hold(acme):
    fund(acme, 100)
    ledger.freeze(team=acme, reason="Payment dispute dp_1")

    with pytest.raises(ledger.TeamFrozen):
        ledger.hold_for_jobs(team=acme, jobs=[make_job(acme)])

    assert wallet_of(acme).held == 0


def test_capture_spends_the_held_credits(acme):
    fund(acme, 30)
    job = make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[job])

    assert ledger.capture(job=job) is True

    wallet = wallet_of(acme)
    assert (wallet.balance, wallet.held, wallet.available) == (20, 0, 20)


def test_release_gives_the_held_credits_back(acme):
    fund(acme, 30)
    job = make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[job])

    assert ledger.release(job=job, memo="Kie is paused") is True

    wallet = wallet_of(acme)
    assert (wallet.balance, wallet.held, wallet.available) == (30, 0, 30)
    assert LedgerEntry.objects.get(kind=EntryKind.RELEASE).memo == "Kie is paused"


def test_a_job_is_settled_once_whatever_is_called_after(acme):
    fund(acme, 30)
    job = make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[job])

    results = [ledger.capture(job=job), ledger.release(job=job), ledger.capture(job=job)]

    assert results == [True, False, False]
    wallet = wallet_of(acme)
    assert (wallet.balance, wallet.held) == (20, 0)
    assert LedgerEntry.objects.filter(job=job, kind__in=["capture", "release"]).count() == 1


def test_settling_a_job_without_a_hold_is_an_error(acme):
    job = make_job(acme)

    with pytest.raises(ledger.NoHold):
        ledger.capture(job=job)


def test_a_clawback_may_take_the_balance_below_zero_and_then_nothing_can_be_held(acme):
    fund(acme, 1000)
    ledger.hold(team=acme, credits=990, key="hold:big")
    ledger.clawback(team=acme, credits=1000, key="clawback:re_1", memo="Refund")

    assert wallet_of(acme).available == -990
    with pytest.raises(ledger.InsufficientCredits) as refused:
        ledger.hold(team=acme, credits=10, key="hold:small")
    assert refused.value.missing == 1000


def test_an_adjustment_needs_a_reason(acme, alice):
    with pytest.raises(ledger.LedgerError):
        ledger.adjust(team=acme, credits=-10, key="adj:1", actor=alice, reason="  ")

    assert not LedgerEntry.objects.filter(kind=EntryKind.ADJUSTMENT).exists()


def test_an_adjustment_records_who_and_why(acme, alice):
    fund(acme, 100)

    entry = ledger.adjust(team=acme, credits=-40, key="adj:1", actor=alice, reason="Duplicate")

    assert (entry.amount, entry.actor, entry.memo) == (-40, alice, "Duplicate")
    assert wallet_of(acme).balance == 60


def test_ledger_entries_cannot_be_changed_or_deleted(acme):
    entry = ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")

    entry.amount = 1_000_000
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=1_000_000)
    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.all().delete()

    entry.refresh_from_db()
    assert entry.amount == 100


def test_a_team_without_a_wallet_gets_one_when_credits_move(acme):
    Wallet.objects.filter(team=acme).delete()

    ledger.grant(team=acme, credits=50, key="promo:acme", memo="Launch promo")

    assert wallet_of(acme).balance == 50


def test_credits_must_be_positive(acme):
    with pytest.raises(ledger.LedgerError):
        ledger.grant(team=acme, credits=0, key="zero", memo="Nothing")
    with pytest.raises(ledger.LedgerError):
        ledger.hold(team=acme, credits=-10, key="negative")


def test_a_job_of_another_team_cannot_be_held_on_this_one(acme, charlie):
    charlies_team = charlie.memberships.get().team
    fund(acme, 100)

    with pytest.raises(ledger.LedgerError):
        ledger.hold_for_jobs(team=acme, jobs=[make_job(charlies_team)])


def test_the_returned_entry_says_whether_this_call_recorded_it(acme):
    first = ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")
    again = ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")

    assert (first.just_recorded, again.just_recorded) == (True, False)
    assert LedgerEntry.objects.get(key="promo:acme").just_recorded is False
