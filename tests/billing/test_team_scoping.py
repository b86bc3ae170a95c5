"""The credits pages, walked by each character of the Acme team.

Alice owns Acme, Bob is its admin, Carol a member and Charlie an outsider. The credits pages act
on the team a person works in, and only a member can switch to a team: every member sees Acme's
credits and history, owners and admins buy, Carol's purchase is 403, and Charlie only ever
reaches his own team (Acme's payment addressed by URL is 404). Refusals change nothing. Once
Alice deletes Acme it is gone for everyone.
"""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team, User
from apps.billing import ledger
from apps.billing.models import TopUp, TopUpStatus, Wallet
from tests.accounts.helpers import all_team_data

pytestmark = pytest.mark.django_db

MEMBERS = ("alice", "bob", "carol")
CHECKOUT_FORM = 'action="/billing/checkout/"'


@pytest.fixture
def acme_funded(acme: Team) -> Team:
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Acme launch promo")
    return acme


def working_in(login, person: User, team: Team) -> Client:
    """`person` signed in, having asked to work in `team` (refused with a 404 to an outsider,
    who then stays in his own team)."""
    client = login(person)
    client.post(reverse("accounts:switch_team"), {"team": team.public_id})
    return client


def ledger_memos(client: Client) -> list[str]:
    response = client.get(reverse("billing:ledger_csv"))
    assert response.status_code == 200
    content = response.getvalue().decode()
    return [row["memo"] for row in csv.DictReader(io.StringIO(content))]


def personal_team(person: User) -> Team:
    return Team.objects.get(is_personal=True, memberships__user=person)


def delete(login, alice: User, team: Team) -> None:
    response = login(alice).post(
        reverse("accounts:delete_team", args=[team.public_id]), {"confirm_name": team.name}
    )
    assert response.status_code == 302


# --- The credits page and its history ------------------------------------------------------


@pytest.mark.parametrize(("who", "may_buy"), [("alice", True), ("bob", True), ("carol", False)])
def test_every_member_sees_the_teams_credits_and_only_managers_the_buy_form(
    request, login, acme_funded, stripe_on, who, may_buy
):
    client = working_in(login, request.getfixturevalue(who), acme_funded)

    page = client.get(reverse("billing:overview"))

    assert page.status_code == 200
    assert "Shared by everyone in Acme." in page.text
    assert "Acme launch promo" in page.text
    assert (CHECKOUT_FORM in page.text) == may_buy


@pytest.mark.parametrize("who", MEMBERS)
def test_every_member_downloads_the_teams_history(request, login, acme_funded, who):
    client = working_in(login, request.getfixturevalue(who), acme_funded)

    assert ledger_memos(client) == ["Acme launch promo"]


def test_an_outsider_only_ever_sees_his_own_teams_credits(login, charlie, acme_funded, stripe_on):
    client = working_in(login, charlie, acme_funded)

    page = client.get(reverse("billing:overview")).text

    assert "Shared by everyone in charlie&#x27;s team." in page
    assert "Acme launch promo" not in page
    assert ledger_memos(client) == ["Welcome credits"]


# --- Buying ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_owners_and_admins_buy_credits_for_the_team(request, login, acme, stripe_api, who):
    buyer = request.getfixturevalue(who)

    response = working_in(login, buyer, acme).post(reverse("billing:checkout"), {"pack": "1000"})

    assert response.status_code == 302
    topup = TopUp.objects.get()
    assert (topup.team, topup.created_by) == (acme, buyer)


def test_a_member_may_not_buy_and_nothing_is_created(login, carol, acme, stripe_api):
    client = working_in(login, carol, acme)
    before = all_team_data()

    response = client.post(reverse("billing:checkout"), {"pack": "1000"})

    assert response.status_code == 403
    assert all_team_data() == before
    assert stripe_api.created_sessions == []


def test_an_outsider_can_only_buy_for_his_own_team(login, charlie, acme, stripe_api):
    client = working_in(login, charlie, acme)

    client.post(reverse("billing:checkout"), {"pack": "1000"})

    assert TopUp.objects.get().team == personal_team(charlie)


# --- Coming back from Stripe -----------------------------------------------------------------


@pytest.fixture
def paid_acme_topup(login, alice, acme, stripe_api) -> TopUp:
    """Alice bought 1,000 credits for Acme; Stripe says paid; nothing is credited yet."""
    working_in(login, alice, acme).post(reverse("billing:checkout"), {"pack": "1000"})
    topup = TopUp.objects.get()
    stripe_api.pay(topup.checkout_session_id)
    return topup


def success_page(client: Client, topup: TopUp):
    return client.get(reverse("billing:success"), {"session_id": topup.checkout_session_id})


@pytest.mark.parametrize("who", MEMBERS)
def test_any_member_coming_back_from_stripe_credits_the_teams_payment(
    request, login, acme, paid_acme_topup, who
):
    response = success_page(login(request.getfixturevalue(who)), paid_acme_topup)

    assert response.status_code == 302
    assert Wallet.objects.get(team=acme).balance == 1000


def test_an_outsider_with_another_teams_payment_link_gets_404_and_nothing_changes(
    login, charlie, paid_acme_topup, stripe_api
):
    before = all_team_data()

    response = success_page(login(charlie), paid_acme_topup)

    assert response.status_code == 404
    assert all_team_data() == before
    assert not stripe_api.retrieve.called


# --- After Acme is deleted -------------------------------------------------------------------


@pytest.mark.parametrize("who", MEMBERS)
def test_a_deleted_teams_credits_are_gone_for_its_former_members(
    request, login, alice, acme_funded, stripe_on, who
):
    person = request.getfixturevalue(who)
    client = working_in(login, person, acme_funded)

    delete(login, alice, acme_funded)

    page = client.get(reverse("billing:overview")).text
    assert f"Shared by everyone in {who}&#x27;s team." in page
    assert "Acme launch promo" not in page
    assert ledger_memos(client) == ["Welcome credits"]


@pytest.mark.parametrize("who", MEMBERS)
def test_a_deleted_teams_payment_link_is_404_and_credits_nothing(
    request, login, alice, acme, paid_acme_topup, stripe_api, who
):
    delete(login, alice, acme)
    before = all_team_data()

    response = success_page(login(request.getfixturevalue(who)), paid_acme_topup)

    assert response.status_code == 404
    assert all_team_data() == before
    assert TopUp.objects.get().status == TopUpStatus.PENDING


def test_buying_after_the_team_was_deleted_buys_for_your_own_team(
    login, alice, bob, acme, stripe_api
):
    client = working_in(login, bob, acme)
    delete(login, alice, acme)

    client.post(reverse("billing:checkout"), {"pack": "1000"})

    assert TopUp.objects.get().team == personal_team(bob)
