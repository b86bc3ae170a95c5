"""Real threads, each with its own database connection, racing for the same wallet.

PostgreSQL only: that is where writers truly run at once (SQLite serialises them).
"""

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse

from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry, StripeEvent, TopUp, Wallet
from apps.jobs.models import Job
from tests.billing.conftest import make_job
from tests.billing.stripe_fakes import event, post_event
from tests.threads import AvailableWatcher, run_at_once

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only"),
]


def test_fifty_holds_at_once_on_credits_for_ten_let_exactly_ten_through(acme):
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Credits for ten videos")

    with AvailableWatcher(acme) as watcher:
        results = run_at_once(
            50, lambda i: ledger.hold(team=acme, credits=10, key=f"hold:racer:{i}")
        )

    held = [r for r in results if isinstance(r, LedgerEntry)]
    refused = [r for r in results if isinstance(r, ledger.InsufficientCredits)]
    assert (len(held), len(refused)) == (10, 40), [r for r in results if isinstance(r, Exception)]
    wallet = Wallet.objects.get(team=acme)
    assert (wallet.balance, wallet.held, wallet.available) == (100, 100, 0)
    assert watcher.lowest is not None
    assert watcher.lowest >= 0
    call_command("reconcile")  # raises CommandError on any drift


def test_fifty_submissions_at_once_keep_exactly_the_jobs_that_were_paid_for(acme):
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Credits for ten videos")

    def submit(i: int) -> int:
        with transaction.atomic():  # the job pipeline's pattern
            job = make_job(acme)
            ledger.hold_for_jobs(team=acme, jobs=[job])
        return job.pk

    with AvailableWatcher(acme) as watcher:
        results = run_at_once(50, submit)

    created = [r for r in results if isinstance(r, int)]
    assert len(created) == 10
    assert sorted(Job.objects.filter(team=acme).values_list("pk", flat=True)) == sorted(created)
    assert LedgerEntry.objects.filter(team=acme, kind=EntryKind.HOLD).count() == 10
    assert Wallet.objects.get(team=acme).available == 0
    assert watcher.lowest is not None
    assert watcher.lowest >= 0
    for pk in created[:5]:
        ledger.capture(job=Job.objects.get(pk=pk))
    call_command("reconcile")  # raises CommandError on any drift


def test_twenty_grants_with_one_key_at_once_apply_once(acme):
    results = run_at_once(
        20, lambda i: ledger.grant(team=acme, credits=500, key="promo:once", memo="Promo")
    )

    assert {r.pk for r in results if isinstance(r, LedgerEntry)} == {
        LedgerEntry.objects.get(key="promo:once").pk
    }
    assert Wallet.objects.get(team=acme).balance == 500


def test_capture_and_release_racing_settle_a_job_once(acme):
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Promo")
    job = make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[job])

    results = run_at_once(
        20, lambda i: ledger.capture(job=job) if i % 2 else ledger.release(job=job)
    )

    assert results.count(True) == 1
    assert results.count(False) == 19
    wallet = Wallet.objects.get(team=acme)
    assert wallet.held == 0
    assert wallet.balance in (90, 100)
    call_command("reconcile")  # raises CommandError on any drift


def test_five_simultaneous_deliveries_of_one_webhook_credit_once(acme, stripe_api, alice):
    owner = Client()
    owner.force_login(alice)
    owner.post(reverse("billing:checkout", args=[acme.public_id]), {"pack": "1000"})
    topup = TopUp.objects.get()
    completed = event("checkout.session.completed", stripe_api.pay(topup.checkout_session_id))

    results = run_at_once(5, lambda i: post_event(Client(), completed).status_code)

    assert results == [200] * 5
    assert Wallet.objects.get(team=acme).balance == 1000
    assert StripeEvent.objects.get().attempts == 1
    call_command("reconcile")  # raises CommandError on any drift


def test_success_pages_and_webhooks_racing_credit_once(acme, stripe_api, alice, bob):
    setup = Client()
    setup.force_login(alice)
    setup.post(reverse("billing:checkout", args=[acme.public_id]), {"pack": "5000"})
    topup = TopUp.objects.get()
    paid = stripe_api.pay(topup.checkout_session_id)
    success_url = (
        reverse("billing:success", args=[acme.public_id])
        + f"?session_id={topup.checkout_session_id}"
    )
    buyers = []
    for person in (alice, bob) * 3:
        buyer = Client()
        buyer.force_login(person)
        buyers.append(buyer)
    deliveries = [event(kind, paid) for kind in ("checkout.session.completed",) * 3] + [
        event("checkout.session.async_payment_succeeded", paid)
    ] * 3

    def race(i: int) -> int:
        if i % 2:
            return post_event(Client(), deliveries[i // 2]).status_code
        return buyers[i // 2].get(success_url).status_code

    results = run_at_once(12, race)

    assert results == [302, 200] * 6
    assert Wallet.objects.get(team=acme).balance == 5000
    assert LedgerEntry.objects.filter(kind=EntryKind.TOPUP).count() == 1
    call_command("reconcile")  # raises CommandError on any drift
