import json
import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.billing import ledger
from apps.billing.models import (
    EntryKind,
    EventOutcome,
    LedgerEntry,
    StripeEvent,
    TopUpStatus,
    Wallet,
)
from tests.billing.conftest import make_job, make_pending_topup
from tests.billing.stripe_fakes import (
    charge,
    checkout_session,
    dispute,
    event,
    post_event,
    receipt_url,
    refund,
    sign,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_on")]


def balance(team) -> int:
    return Wallet.objects.get(team=team).balance


def paid_topup(client, team, credits=1000):
    """A top-up paid and credited through its webhook, as in production."""
    topup = make_pending_topup(team, credits=credits)
    assert (
        post_event(client, event("checkout.session.completed", checkout_session(topup))).status_code
        == 200
    )
    topup.refresh_from_db()
    return topup


def test_a_paid_checkout_credits_the_team(client, acme):
    topup = make_pending_topup(acme)

    response = post_event(client, event("checkout.session.completed", checkout_session(topup)))

    assert response.status_code == 200
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PAID
    assert topup.payment_intent_id == f"pi_for_{topup.checkout_session_id}"
    assert balance(acme) == 1000
    entry = LedgerEntry.objects.get(kind=EntryKind.TOPUP)
    assert (entry.key, entry.topup, entry.amount) == (
        f"topup:{topup.checkout_session_id}",
        topup,
        1000,
    )


def test_the_same_event_delivered_five_times_credits_once(client, acme):
    topup = make_pending_topup(acme)
    completed = event("checkout.session.completed", checkout_session(topup))

    responses = [post_event(client, completed) for _ in range(5)]

    assert [r.status_code for r in responses] == [200] * 5
    assert balance(acme) == 1000
    assert StripeEvent.objects.get().attempts == 1


def test_every_event_about_one_paid_session_credits_once(client, acme):
    topup = make_pending_topup(acme)
    session = checkout_session(topup)

    for event_type in [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    ] * 3:
        assert post_event(client, event(event_type, session)).status_code == 200

    assert balance(acme) == 1000
    assert StripeEvent.objects.count() == 6
    assert LedgerEntry.objects.filter(kind=EntryKind.TOPUP).count() == 1


def test_a_forged_signature_is_refused_and_nothing_stored(client, acme):
    topup = make_pending_topup(acme)

    response = post_event(
        client, event("checkout.session.completed", checkout_session(topup)), secret="whsec_guess"
    )

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert balance(acme) == 0


def test_a_body_changed_after_signing_is_refused(client, acme):
    topup = make_pending_topup(acme, credits=1000)
    genuine = json.dumps(event("checkout.session.completed", checkout_session(topup))).encode()
    tampered = genuine.replace(b'"amount_total": 500', b'"amount_total": 50000')

    response = post_event(client, tampered, signature=sign(genuine))

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_a_stale_timestamp_is_refused(client, acme):
    topup = make_pending_topup(acme)
    ten_minutes_ago = int(time.time()) - 600

    response = post_event(
        client,
        event("checkout.session.completed", checkout_session(topup)),
        timestamp=ten_minutes_ago,
    )

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert balance(acme) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt_1", "type": "checkout.session.completed", "data": {',
        b"[]",
        b"",
        b'{"id": "evt_1"}',
    ],
)
def test_a_signed_body_that_is_not_a_stripe_event_is_refused(client, body):
    response = post_event(client, body)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_a_missing_signature_header_is_refused(client):
    response = client.post("/hooks/stripe/", data=b"{}", content_type="application/json")

    assert response.status_code == 400


def test_without_a_webhook_secret_nothing_is_accepted(client, acme, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    topup = make_pending_topup(acme)

    response = post_event(client, event("checkout.session.completed", checkout_session(topup)))

    assert response.status_code == 400
    assert balance(acme) == 0


def test_unknown_event_types_are_stored_and_acknowledged(client):
    response = post_event(client, event("customer.created", {"id": "cus_1", "object": "customer"}))

    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert (stored.type, stored.outcome) == ("customer.created", EventOutcome.IGNORED)
    assert stored.processed_at is not None
    assert stored.payload["data"]["object"]["id"] == "cus_1"


def test_a_session_that_is_not_ours_is_acknowledged_and_ignored(client):
    foreign = {
        "id": "cs_test_foreign",
        "object": "checkout.session",
        "payment_status": "paid",
        "client_reference_id": None,
        "amount_total": 100,
        "currency": "usd",
    }

    response = post_event(client, event("checkout.session.completed", foreign))

    assert response.status_code == 200
    assert StripeEvent.objects.get().outcome == EventOutcome.IGNORED


def test_a_delayed_payment_is_credited_when_it_succeeds(client, acme):
    topup = make_pending_topup(acme)

    post_event(
        client,
        event("checkout.session.completed", checkout_session(topup, payment_status="unpaid")),
    )
    assert balance(acme) == 0
    post_event(client, event("checkout.session.async_payment_succeeded", checkout_session(topup)))

    assert balance(acme) == 1000


def test_a_failed_delayed_payment_marks_the_top_up(client, acme):
    topup = make_pending_topup(acme)

    post_event(
        client,
        event(
            "checkout.session.async_payment_failed",
            checkout_session(topup, payment_status="unpaid"),
        ),
    )

    topup.refresh_from_db()
    assert topup.status == TopUpStatus.FAILED
    assert balance(acme) == 0


def test_an_expired_checkout_marks_the_top_up(client, acme):
    topup = make_pending_topup(acme)

    post_event(
        client, event("checkout.session.expired", checkout_session(topup, payment_status="unpaid"))
    )

    topup.refresh_from_db()
    assert topup.status == TopUpStatus.EXPIRED


def test_a_late_expiry_never_undoes_a_payment(client, acme):
    topup = paid_topup(client, acme)

    post_event(
        client, event("checkout.session.expired", checkout_session(topup, payment_status="unpaid"))
    )

    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PAID
    assert balance(acme) == 1000


def test_a_full_refund_takes_the_credits_back(client, acme):
    topup = paid_topup(client, acme)

    refunded = charge(payment_intent=topup.payment_intent_id, amount=500, amount_refunded=500)
    response = post_event(client, event("charge.refunded", refunded))

    assert response.status_code == 200
    assert balance(acme) == 0
    clawback = LedgerEntry.objects.get(kind=EntryKind.CLAWBACK)
    assert (clawback.amount, clawback.topup) == (-1000, topup)
    topup.refresh_from_db()
    assert topup.refunded_cents == 500


def test_partial_refunds_take_back_their_share_once_each(client, acme):
    topup = paid_topup(client, acme)
    first = charge(payment_intent=topup.payment_intent_id, amount=500, amount_refunded=125)
    second = charge(payment_intent=topup.payment_intent_id, amount=500, amount_refunded=250)

    for refunded in (first, first, second, first, second):
        post_event(client, event("charge.refunded", refunded))

    assert balance(acme) == 500
    assert sorted(e.amount for e in LedgerEntry.objects.filter(kind=EntryKind.CLAWBACK)) == [
        -250,
        -250,
    ]


def test_refunds_listed_on_the_charge_are_keyed_by_refund_id(client, acme):
    topup = paid_topup(client, acme, credits=5000)  # $25.00
    refunds = [refund("re_b", 1000, created=200), refund("re_a", 333, created=100)]
    refunded = charge(
        payment_intent=topup.payment_intent_id, amount=2500, amount_refunded=1333, refunds=refunds
    )

    post_event(client, event("charge.refunded", refunded))
    post_event(client, event("charge.refunded", refunded))

    clawbacks = {e.key: -e.amount for e in LedgerEntry.objects.filter(kind=EntryKind.CLAWBACK)}
    # 5000 * 333 / 2500 = 666 first, then 5000 * 1333 / 2500 = 2666 (rounded down) in all.
    assert clawbacks == {"clawback:re_a": 666, "clawback:re_b": 2000}
    assert balance(acme) == 5000 - 2666


def test_odd_refunds_never_take_back_more_than_was_bought(client, acme):
    topup = paid_topup(client, acme, credits=5000)
    for cents_refunded in (1, 334, 1001, 2499, 2500, 2500):
        refunded = charge(
            payment_intent=topup.payment_intent_id, amount=2500, amount_refunded=cents_refunded
        )
        post_event(client, event("charge.refunded", refunded))

    assert -sum(e.amount for e in LedgerEntry.objects.filter(kind=EntryKind.CLAWBACK)) == 5000
    assert balance(acme) == 0


def test_a_refund_after_spending_leaves_a_debt_that_blocks_new_jobs_until_a_top_up(client, acme):
    topup = paid_topup(client, acme)
    job = make_job(acme, credits=600)
    ledger.hold_for_jobs(team=acme, jobs=[job])
    ledger.capture(job=job)

    post_event(
        client,
        event(
            "charge.refunded",
            charge(payment_intent=topup.payment_intent_id, amount=500, amount_refunded=500),
        ),
    )

    assert ledger.available_credits(acme) == -600
    with pytest.raises(ledger.InsufficientCredits) as refused:
        ledger.hold_for_jobs(team=acme, jobs=[make_job(acme)])
    assert refused.value.missing == 610

    paid_topup(client, acme)

    ledger.hold_for_jobs(team=acme, jobs=[make_job(acme)])
    assert ledger.available_credits(acme) == 390


def test_a_refund_arriving_before_its_payment_waits_for_it(client, acme):
    topup = make_pending_topup(acme)
    session = checkout_session(topup)
    refunded = event(
        "charge.refunded",
        charge(payment_intent=session["payment_intent"], amount=500, amount_refunded=500),
    )

    early = post_event(client, refunded)

    assert early.status_code == 500  # Stripe delivers it again later
    stored = StripeEvent.objects.get()
    assert stored.processed_at is None
    assert "TopUpNotFound" in stored.processing_error

    post_event(client, event("checkout.session.completed", session))
    retried = post_event(client, refunded)

    assert retried.status_code == 200
    assert balance(acme) == 0
    assert StripeEvent.objects.get(pk=stored.pk).processing_error == ""


def test_a_dispute_freezes_the_team_and_everyone_in_it_is_told(client, acme, login, carol):
    topup = paid_topup(client, acme)

    response = post_event(
        client,
        event(
            "charge.dispute.created", dispute(payment_intent=topup.payment_intent_id, amount=500)
        ),
    )

    assert response.status_code == 200
    wallet = Wallet.objects.get(team=acme)
    assert wallet.is_frozen
    assert "Payment dispute" in wallet.frozen_reason
    with pytest.raises(ledger.TeamFrozen):
        ledger.hold_for_jobs(team=acme, jobs=[make_job(acme)])
    page = " ".join(
        login(carol).get(reverse("billing:overview", args=[acme.public_id])).text.split()
    )
    assert "New videos are paused for Acme because of a dispute about one of its payments." in page


def test_jobs_already_held_still_settle_on_a_frozen_team(client, acme):
    topup = paid_topup(client, acme)
    job = make_job(acme)
    ledger.hold_for_jobs(team=acme, jobs=[job])

    post_event(
        client,
        event(
            "charge.dispute.created", dispute(payment_intent=topup.payment_intent_id, amount=500)
        ),
    )

    assert ledger.capture(job=job) is True
    assert balance(acme) == 990


def test_a_failing_event_is_stored_with_its_error_and_answered_500(client, acme):
    topup = make_pending_topup(acme)
    session = checkout_session(topup) | {"amount_total": 1}

    response = post_event(client, event("checkout.session.completed", session))

    assert response.status_code == 500
    stored = StripeEvent.objects.get()
    assert stored.processed_at is None
    assert "FulfilmentError" in stored.processing_error
    assert stored.payload["data"]["object"]["amount_total"] == 1
    assert balance(acme) == 0


def test_the_receipt_link_is_fetched_after_the_webhook_credits(
    client, login, alice, acme, stripe_api, django_capture_on_commit_callbacks
):
    login(alice).post(reverse("billing:checkout", args=[acme.public_id]), {"pack": "1000"})
    topup = acme.topups.get()
    paid = stripe_api.pay(topup.checkout_session_id)

    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("checkout.session.completed", paid))

    topup.refresh_from_db()
    assert topup.receipt_url == receipt_url(paid["payment_intent"])


# --- Disputes closing ------------------------------------------------------------------------


def open_dispute(client, topup, *, amount: int) -> dict:
    disputed = dispute(payment_intent=topup.payment_intent_id, amount=amount)
    assert post_event(client, event("charge.dispute.created", disputed)).status_code == 200
    return disputed


def close(client, disputed: dict, status: str):
    return post_event(client, event("charge.dispute.closed", disputed | {"status": status}))


def test_a_won_dispute_unfreezes_the_team_and_takes_nothing(client, acme):
    topup = paid_topup(client, acme)
    disputed = open_dispute(client, topup, amount=500)

    response = close(client, disputed, "won")

    assert response.status_code == 200
    assert not Wallet.objects.get(team=acme).is_frozen
    assert balance(acme) == 1000
    assert not LedgerEntry.objects.filter(kind=EntryKind.CLAWBACK).exists()
    ledger.hold_for_jobs(team=acme, jobs=[make_job(acme)])  # no longer raises TeamFrozen
    assert StripeEvent.objects.get(type="charge.dispute.closed").outcome == EventOutcome.HANDLED


def test_a_won_dispute_leaves_a_freeze_another_dispute_caused(client, acme):
    first = paid_topup(client, acme)
    second = paid_topup(client, acme)
    other = open_dispute(client, first, amount=500)
    won = dispute(payment_intent=second.payment_intent_id, amount=500)

    close(client, won, "won")

    wallet = Wallet.objects.get(team=acme)
    assert wallet.is_frozen
    assert other["id"] in wallet.frozen_reason


def test_a_lost_dispute_claws_back_the_disputed_credits_once(client, acme):
    topup = paid_topup(client, acme)  # 1,000 credits for $5.00
    disputed = open_dispute(client, topup, amount=500)

    first = close(client, disputed, "lost")
    again = post_event(client, event("charge.dispute.closed", disputed | {"status": "lost"}))

    assert (first.status_code, again.status_code) == (200, 200)
    [entry] = LedgerEntry.objects.filter(kind=EntryKind.CLAWBACK)
    assert (entry.amount, entry.key, entry.topup) == (-1000, f"clawback:{disputed['id']}", topup)
    assert "Lost payment dispute of $5.00" in entry.memo
    assert balance(acme) == 0
    assert Wallet.objects.get(team=acme).is_frozen  # staff look at a lost dispute
    call_command("reconcile")  # raises CommandError on any drift


def test_a_lost_dispute_after_a_partial_refund_never_takes_more_than_was_bought(client, acme):
    topup = paid_topup(client, acme)
    refunded_charge = charge(
        payment_intent=topup.payment_intent_id,
        amount=500,
        amount_refunded=100,
        refunds=[refund("re_1", 100, created=1)],
    )
    refunded = post_event(client, event("charge.refunded", refunded_charge))
    disputed = open_dispute(client, topup, amount=500)

    close(client, disputed, "lost")

    assert refunded.status_code == 200
    taken = LedgerEntry.objects.filter(kind=EntryKind.CLAWBACK).values_list("amount", flat=True)
    assert sorted(taken) == [-800, -200]
    assert balance(acme) == 0


def test_a_dispute_closed_for_an_unknown_payment_is_stored_and_answered_500(client, acme):
    response = close(client, dispute(payment_intent="pi_unknown", amount=500), "lost")

    assert response.status_code == 500
    assert "TopUpNotFound" in StripeEvent.objects.get().processing_error
    assert not LedgerEntry.objects.filter(kind=EntryKind.CLAWBACK).exists()


def test_a_forged_dispute_closed_event_is_rejected_and_changes_nothing(client, acme):
    topup = paid_topup(client, acme)
    disputed = open_dispute(client, topup, amount=500)
    closed = event("charge.dispute.closed", disputed | {"status": "won"})

    response = post_event(client, closed, secret="whsec_not_stripes")

    assert response.status_code == 400
    assert Wallet.objects.get(team=acme).is_frozen
