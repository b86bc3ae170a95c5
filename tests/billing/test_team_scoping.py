"""The credits pages, walked by each character of the Acme team.

Alice owns Acme, Bob is its admin, Carol a member and Charlie an outsider. The credits pages
name their team in the URL (`/t/<team>/billing/…`): every member sees Acme's credits and
history, owners and admins buy, Carol's purchase is 403, and Charlie gets 404 for every Acme
address — also for Acme's payment under his own team's address. Refusals change nothing. Once
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


def url(name: str, team: Team) -> str:
    return reverse(name, args=[team.public_id])


def checkout_form(team: Team) -> str:
    return f'action="{url("billing:checkout", team)}"'


@pytest.fixture
def acme_funded(acme: Team) -> Team:
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Acme launch promo")
    return acme


def ledger_memos(client: Client, team: Team) -> list[str]:
    response = client.get(url("billing:ledger_csv", team))
    assert response.status_code == 200
    content = response.getvalue().decode()
    return [row["memo"] for row in csv.DictReader(io.StringIO(content))]


def buy(client: Client, team: Team):
    return client.post(url("billing:checkout", team), {"pack": "1000"})


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
    client = login(request.getfixturevalue(who))

    page = client.get(url("billing:overview", acme_funded))

    assert page.status_code == 200
    assert "Shared by everyone in Acme." in page.text
    assert "Acme launch promo" in page.text
    assert (checkout_form(acme_funded) in page.text) == may_buy


@pytest.mark.parametrize("who", MEMBERS)
def test_every_member_downloads_the_teams_history(request, login, acme_funded, who):
    client = login(request.getfixturevalue(who))

    assert ledger_memos(client, acme_funded) == ["Acme launch promo"]


def test_an_outsider_gets_404_for_the_teams_credits_and_sees_only_his_own(
    login, charlie, acme_funded, stripe_on
):
    client = login(charlie)

    for name in ("billing:overview", "billing:ledger_csv"):
        assert client.get(url(name, acme_funded)).status_code == 404
    page = client.get(url("billing:overview", personal_team(charlie))).text

    assert "Shared by everyone in charlie&#x27;s team." in page
    assert "Acme launch promo" not in page
    assert ledger_memos(client, personal_team(charlie)) == ["Welcome credits"]


# --- Buying ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_owners_and_admins_buy_credits_for_the_team(request, login, acme, stripe_api, who):
    buyer = request.getfixturevalue(who)

    response = buy(login(buyer), acme)

    assert response.status_code == 302
    topup = TopUp.objects.get()
    assert (topup.team, topup.created_by) == (acme, buyer)


def test_a_member_may_not_buy_and_nothing_is_created(login, carol, acme, stripe_api):
    client = login(carol)
    before = all_team_data()

    response = buy(client, acme)

    assert response.status_code == 403
    assert all_team_data() == before
    assert stripe_api.created_sessions == []


def test_an_outsider_cannot_buy_for_the_team_and_nothing_is_created(
    login, charlie, acme, stripe_api
):
    before = all_team_data()

    response = buy(login(charlie), acme)

    assert response.status_code == 404
    assert all_team_data() == before
    assert stripe_api.created_sessions == []


# --- Coming back from Stripe -----------------------------------------------------------------


@pytest.fixture
def paid_acme_topup(login, alice, acme, stripe_api) -> TopUp:
    """Alice bought 1,000 credits for Acme; Stripe says paid; nothing is credited yet."""
    buy(login(alice), acme)
    topup = TopUp.objects.get()
    stripe_api.pay(topup.checkout_session_id)
    return topup


def success_page(client: Client, topup: TopUp, *, under: Team | None = None):
    """Stripe's way back to the payment's team (or to the team `under`)."""
    team = under or topup.team
    return client.get(url("billing:success", team), {"session_id": topup.checkout_session_id})


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


def test_an_outsider_with_another_teams_payment_under_his_own_team_gets_404(
    login, charlie, paid_acme_topup, stripe_api
):
    before = all_team_data()

    response = success_page(login(charlie), paid_acme_topup, under=personal_team(charlie))

    assert response.status_code == 404
    assert all_team_data() == before
    assert not stripe_api.retrieve.called


# --- After Acme is deleted -------------------------------------------------------------------


@pytest.mark.parametrize("who", MEMBERS)
def test_a_deleted_teams_credits_are_gone_for_its_former_members(
    request, login, alice, acme_funded, stripe_on, who
):
    client = login(request.getfixturevalue(who))
    client.post(reverse("accounts:switch_team"), {"team": acme_funded.public_id})

    delete(login, alice, acme_funded)

    for name in ("billing:overview", "billing:ledger_csv"):
        assert client.get(url(name, acme_funded)).status_code == 404
    page = client.get(reverse("billing"), follow=True).text
    assert f"Shared by everyone in {who}&#x27;s team." in page
    assert "Acme launch promo" not in page


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


def test_buying_after_the_team_was_deleted_is_404_and_buys_nothing(
    login, alice, bob, acme, stripe_api
):
    client = login(bob)
    delete(login, alice, acme)

    response = buy(client, acme)

    assert response.status_code == 404
    assert not TopUp.objects.exists()
