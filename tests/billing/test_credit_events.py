"""Credits reaching a team appear once in its audit log ("Credits granted"): top-ups, whichever
of the webhook and the success page credits them, and staff grants and adjustments."""

import re

import pytest
from django.urls import reverse

from apps.accounts.models import TeamEvent, TeamEventKind, User
from apps.billing import ledger
from apps.billing.models import TopUp
from tests.billing.stripe_fakes import event, post_event

pytestmark = pytest.mark.django_db


def credit_events(team) -> list[tuple[str, str]]:
    return list(
        TeamEvent.objects.filter(team=team, kind=TeamEventKind.CREDITS_GRANTED)
        .order_by("pk")
        .values_list("actor_email", "detail")
    )


@pytest.fixture
def bobs_paid_topup(login, acme, bob, stripe_api) -> TopUp:
    """Bob, Acme's admin, bought 1,000 credits; Stripe says paid; nothing is credited yet."""
    login(bob).post(reverse("billing:checkout", args=[acme.public_id]), {"pack": "1000"})
    topup = TopUp.objects.get()
    stripe_api.pay(topup.checkout_session_id)
    return topup


def success_page(client, topup: TopUp):
    return client.get(
        reverse("billing:success", args=[topup.team.public_id]),
        {"session_id": topup.checkout_session_id},
    )


def test_a_top_up_is_logged_as_credits_bought_by_the_buyer(
    client, acme, bob, stripe_api, bobs_paid_topup
):
    session = stripe_api.sessions[bobs_paid_topup.checkout_session_id]

    post_event(client, event("checkout.session.completed", session))

    assert credit_events(acme) == [("bob@example.com", "1,000 credits bought")]
    assert TeamEvent.objects.get(kind=TeamEventKind.CREDITS_GRANTED).actor == bob


def test_a_top_up_credited_by_webhooks_and_success_pages_is_logged_once(
    login, client, acme, alice, bob, stripe_api, bobs_paid_topup
):
    session = stripe_api.sessions[bobs_paid_topup.checkout_session_id]

    success_page(login(bob), bobs_paid_topup)
    post_event(client, event("checkout.session.completed", session))
    post_event(client, event("checkout.session.async_payment_succeeded", session))
    success_page(login(alice), bobs_paid_topup)

    assert credit_events(acme) == [("bob@example.com", "1,000 credits bought")]


def test_a_top_up_not_yet_paid_is_not_logged(login, acme, bob, stripe_api):
    client = login(bob)
    client.post(reverse("billing:checkout", args=[acme.public_id]), {"pack": "1000"})

    success_page(client, TopUp.objects.get())

    assert credit_events(acme) == []


def test_owners_and_admins_read_top_ups_in_the_activity_log(
    login, client, acme, alice, stripe_api, bobs_paid_topup
):
    session = stripe_api.sessions[bobs_paid_topup.checkout_session_id]
    post_event(client, event("checkout.session.completed", session))

    page = login(alice).get(reverse("accounts:activity", args=[acme.public_id])).text

    assert re.search(
        r"Credits granted</td>\s*<td[^>]*>bob@example.com</td>.*1,000 credits bought", page, re.S
    )


# --- Staff ---------------------------------------------------------------------------------


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("ops@unmark.example", "a-long-unusual-pass-1")


def staff_credit(client, team, **fields: str):
    url = reverse("admin:billing_wallet_credit", args=[team.wallet.pk])
    found = re.search(r'name="submission" value="([0-9a-f-]{36})"', client.get(url).text)
    assert found
    form = {"submission": found.group(1), **fields}
    return client.post(url, form), form


def test_a_staff_grant_is_logged_without_naming_the_staff_member(login, staff, acme):
    response, _ = staff_credit(
        login(staff), acme, action="grant", credits="500", reason="Trial for a school"
    )

    assert response.status_code == 302
    assert credit_events(acme) == [("", "500 credits: Trial for a school")]
    assert TeamEvent.objects.get(kind=TeamEventKind.CREDITS_GRANTED).actor is None


def test_a_staff_adjustment_is_logged_with_its_sign(login, staff, acme):
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")

    staff_credit(login(staff), acme, action="adjust", credits="-40", reason="Duplicate grant")

    assert credit_events(acme) == [("", "Balance adjusted by -40 credits: Duplicate grant")]


def test_a_staff_form_submitted_twice_is_logged_once(login, staff, acme):
    client = login(staff)
    _, form = staff_credit(client, acme, action="grant", credits="500", reason="Trial")

    client.post(reverse("admin:billing_wallet_credit", args=[acme.wallet.pk]), form)

    assert credit_events(acme) == [("", "500 credits: Trial")]


def test_a_staff_form_replayed_with_other_values_logs_nothing_more(login, staff, acme):
    client = login(staff)
    _, form = staff_credit(client, acme, action="grant", credits="500", reason="Trial")

    replay = client.post(
        reverse("admin:billing_wallet_credit", args=[acme.wallet.pk]), form | {"credits": "900"}
    )

    assert "This form was already submitted with other values." in replay.text
    assert credit_events(acme) == [("", "500 credits: Trial")]


def test_welcome_credits_are_part_of_creating_the_personal_team_not_a_grant(alice):
    personal = alice.memberships.get().team

    assert credit_events(personal) == []
    assert TeamEvent.objects.filter(team=personal).values_list("kind", flat=True).get() == (
        TeamEventKind.CREATED
    )
