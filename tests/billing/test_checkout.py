import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.billing import stripe_gateway as gateway
from apps.billing.models import EntryKind, LedgerEntry, TopUp, TopUpStatus, Wallet
from tests.billing.stripe_fakes import checkout_session, event, post_event, receipt_url

pytestmark = pytest.mark.django_db


def buy(client, team, pack="1000"):
    return client.post(reverse("billing:checkout", args=[team.public_id]), {"pack": pack})


def success(client, team, topup):
    return client.get(
        reverse("billing:success", args=[team.public_id]), {"session_id": topup.checkout_session_id}
    )


def test_an_owner_is_sent_to_stripe_checkout_for_the_pack_she_chose(login, alice, acme, stripe_api):
    response = buy(login(alice), acme, "5000")

    topup = TopUp.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"https://checkout.stripe.com/c/pay/{topup.checkout_session_id}"
    assert (topup.team, topup.created_by, topup.status) == (acme, alice, TopUpStatus.PENDING)
    assert (topup.credits, topup.amount_cents) == (5000, 2500)


def test_the_price_sent_to_stripe_is_computed_on_the_server(login, alice, acme, stripe_api):
    buy(login(alice), acme, "20000")

    (sent,) = stripe_api.created_sessions
    topup = TopUp.objects.get()
    assert sent["mode"] == "payment"
    assert sent["line_items[0][price_data][unit_amount]"] == "10000"  # $100.00
    assert sent["line_items[0][price_data][currency]"] == "usd"
    assert sent["line_items[0][quantity]"] == "1"
    assert sent["client_reference_id"] == str(topup.public_id)
    assert sent["metadata[topup_id]"] == str(topup.pk)
    assert sent["metadata[team]"] == str(acme.public_id)
    assert sent["success_url"] == (
        f"http://testserver/t/{acme.public_id}/billing/success/?session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert sent["cancel_url"] == f"http://testserver/t/{acme.public_id}/billing/"


def test_a_made_up_pack_is_refused_and_nothing_is_created(login, alice, acme, stripe_api):
    client = login(alice)

    for tampered in ["1", "999", "-5000", "5000.5", "", "1000; amount=1"]:
        response = buy(client, acme, tampered)
        assert response.status_code == 400, tampered
        assert "Choose one of the credit packs." in response.text

    assert not TopUp.objects.exists()
    assert stripe_api.created_sessions == []


def test_a_team_gets_one_stripe_customer_however_often_it_buys(login, alice, bob, acme, stripe_api):
    buy(login(alice), acme)
    buy(login(bob), acme)

    assert len(stripe_api.customers) == 1
    assert stripe_api.customers[0]["metadata[team]"] == str(acme.public_id)
    sessions = stripe_api.sessions.values()
    assert {session["customer"] for session in sessions} == {
        Wallet.objects.get(team=acme).stripe_customer_id
    }


def test_an_admin_may_buy(login, bob, acme, stripe_api):
    response = buy(login(bob), acme)

    assert response.status_code == 302
    assert TopUp.objects.get().created_by == bob


def test_a_member_may_not_buy(login, carol, acme, stripe_api):
    response = buy(login(carol), acme)

    assert response.status_code == 403
    assert not TopUp.objects.exists()


def test_without_stripe_keys_checkout_is_refused_without_calling_stripe(login, alice, acme):
    client = login(alice)

    response = buy(client, acme)

    assert response.status_code == 302
    assert not TopUp.objects.exists()
    assert "Card payments are not available yet" in client.get(response["Location"]).text


def test_when_stripe_refuses_the_top_up_is_marked_failed_and_the_owner_told(
    login, alice, acme, stripe_api
):
    stripe_api.refuse_checkout = True
    client = login(alice)

    response = buy(client, acme)

    assert response["Location"] == reverse("billing:overview", args=[acme.public_id])
    assert TopUp.objects.get().status == TopUpStatus.FAILED
    assert "Nothing was charged" in client.get(response["Location"]).text


def test_the_success_page_credits_a_paid_session(login, alice, acme, stripe_api):
    client = login(alice)
    buy(client, acme)
    topup = TopUp.objects.get()
    paid = stripe_api.pay(topup.checkout_session_id)

    response = success(client, acme, topup)

    assert response["Location"] == reverse("billing:overview", args=[acme.public_id])
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PAID
    assert topup.payment_intent_id == paid["payment_intent"]
    assert topup.receipt_url == receipt_url(paid["payment_intent"])
    assert Wallet.objects.get(team=acme).balance == 1000
    page = client.get(response["Location"]).text
    assert "Payment received: 1,000 credits were added to Acme." in page
    assert receipt_url(paid["payment_intent"]) in page


def test_the_success_page_before_payment_completes_credits_nothing(login, alice, acme, stripe_api):
    client = login(alice)
    buy(client, acme)
    topup = TopUp.objects.get()

    response = success(client, acme, topup)

    assert TopUp.objects.get().status == TopUpStatus.PENDING
    assert Wallet.objects.get(team=acme).balance == 0
    assert "added as soon as Stripe confirms" in client.get(response["Location"]).text


def test_success_page_and_webhook_in_either_order_credit_once(
    login, alice, acme, stripe_api, client
):
    owner = login(alice)
    buy(owner, acme)
    buy(owner, acme)
    first, second = TopUp.objects.order_by("id")
    for topup in (first, second):
        stripe_api.pay(topup.checkout_session_id)

    success(owner, acme, first)
    post_event(
        client, event("checkout.session.completed", stripe_api.sessions[first.checkout_session_id])
    )
    post_event(
        client, event("checkout.session.completed", stripe_api.sessions[second.checkout_session_id])
    )
    success(owner, acme, second)

    assert Wallet.objects.get(team=acme).balance == 2000
    assert LedgerEntry.objects.filter(team=acme, kind=EntryKind.TOPUP).count() == 2


def test_an_outsider_cannot_use_another_teams_success_page(login, alice, acme, charlie, stripe_api):
    buy(login(alice), acme)
    topup = TopUp.objects.get()
    stripe_api.pay(topup.checkout_session_id)

    response = success(login(charlie), acme, topup)

    assert response.status_code == 404
    assert TopUp.objects.get().status == TopUpStatus.PENDING
    assert not stripe_api.retrieve.called


def test_a_session_paid_for_a_different_amount_is_not_credited(login, alice, acme, stripe_api):
    client = login(alice)
    buy(client, acme)
    topup = TopUp.objects.get()
    stripe_api.pay(topup.checkout_session_id)
    stripe_api.sessions[topup.checkout_session_id]["amount_total"] = 1

    success(client, acme, topup)

    assert TopUp.objects.get().status == TopUpStatus.PENDING
    assert Wallet.objects.get(team=acme).balance == 0


def test_a_session_whose_id_was_never_saved_is_still_credited_by_its_reference(
    acme, client, stripe_on
):
    topup = TopUp.objects.create(team=acme, credits=1000, amount_cents=500)
    session = checkout_session(topup) | {"id": "cs_test_lost_id"}

    response = post_event(client, event("checkout.session.completed", session))

    assert response.status_code == 200
    topup.refresh_from_db()
    assert (topup.status, topup.checkout_session_id) == (TopUpStatus.PAID, "cs_test_lost_id")
    assert Wallet.objects.get(team=acme).balance == 1000


def test_the_stripe_adapter_only_talks_to_stripe_and_writes_no_rows(acme, stripe_api):
    with CaptureQueriesContext(connection) as queries:
        customer_id = gateway.create_customer(team=acme, email="alice@example.com")

    assert customer_id
    assert stripe_api.customers[0]["metadata[team]"] == str(acme.public_id)
    assert queries.captured_queries == []
    assert Wallet.objects.get(team=acme).stripe_customer_id == ""
