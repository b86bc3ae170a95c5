"""Every team page and action, walked by each character of the Acme team.

Alice owns Acme, Bob is its admin, Carol a member and Charlie an outsider. Each can do
exactly what their role allows; anything else is 403 (a member lacking the role) or 404
(an outsider, another team's object, or a team that was deleted) and changes nothing. The
credits and job pages are walked the same way in tests/billing/test_team_scoping.py and
tests/jobs/test_team_scoping.py.
"""

import pytest
from django.urls import reverse

from apps.accounts.models import OwnershipOffer, Role
from apps.accounts.services import archive_team, create_team
from tests.accounts.helpers import membership, team_state
from tests.factories import add_member, make_invitation

pytestmark = pytest.mark.django_db

CHARACTERS = ("alice", "bob", "carol", "charlie")
OK_PAGE, DONE = 200, 302

# action: expected status for (Alice owner, Bob admin, Carol member, Charlie outsider).
# None: allowed, but refused by a team rule; covered by its own test.
EXPECTED: dict[str, tuple[int | None, ...]] = {
    "members page": (OK_PAGE, OK_PAGE, OK_PAGE, 404),
    "carol's member page": (OK_PAGE, OK_PAGE, 403, 404),
    "alice's member page": (OK_PAGE, 403, 403, 404),
    "activity page": (OK_PAGE, OK_PAGE, 403, 404),
    "settings page": (OK_PAGE, OK_PAGE, OK_PAGE, 404),
    "invite": (DONE, DONE, 403, 404),
    "resend invitation": (DONE, DONE, 403, 404),
    "revoke invitation": (DONE, DONE, 403, 404),
    "make carol admin": (DONE, DONE, 403, 404),
    "make alice admin": (None, 403, 403, 404),
    "limit carol": (DONE, DONE, 403, 404),
    "limit alice": (DONE, 403, 403, 404),
    "remove carol": (DONE, DONE, 403, 404),
    "remove alice": (403, 403, 403, 404),
    "offer ownership to carol": (DONE, 403, 403, 404),
    "rename": (DONE, DONE, 403, 404),
    "delete": (DONE, 403, 403, 404),
    "leave": (None, DONE, DONE, 404),
}


def action_request(action: str, acme, invitation) -> tuple[str, str, dict[str, str]]:
    team = acme.public_id
    carol = acme.memberships.get(user__email="carol@example.com")
    alice = acme.memberships.get(user__email="alice@example.com")
    requests = {
        "members page": ("get", reverse("accounts:members", args=[team]), {}),
        "carol's member page": ("get", reverse("accounts:member", args=[team, carol.pk]), {}),
        "alice's member page": ("get", reverse("accounts:member", args=[team, alice.pk]), {}),
        "activity page": ("get", reverse("accounts:activity", args=[team]), {}),
        "settings page": ("get", reverse("accounts:team_settings", args=[team]), {}),
        "invite": (
            "post",
            reverse("accounts:invite", args=[team]),
            {"email": "erin@example.com", "role": "member"},
        ),
        "resend invitation": (
            "post",
            reverse("accounts:resend_invitation", args=[team, invitation.pk]),
            {},
        ),
        "revoke invitation": (
            "post",
            reverse("accounts:revoke_invitation", args=[team, invitation.pk]),
            {},
        ),
        "make carol admin": (
            "post",
            reverse("accounts:change_role", args=[team, carol.pk]),
            {"role": "admin"},
        ),
        "make alice admin": (
            "post",
            reverse("accounts:change_role", args=[team, alice.pk]),
            {"role": "admin"},
        ),
        "limit carol": (
            "post",
            reverse("accounts:set_limit", args=[team, carol.pk]),
            {"monthly_credit_limit": "100"},
        ),
        "limit alice": (
            "post",
            reverse("accounts:set_limit", args=[team, alice.pk]),
            {"monthly_credit_limit": "100"},
        ),
        "remove carol": ("post", reverse("accounts:remove_member", args=[team, carol.pk]), {}),
        "remove alice": ("post", reverse("accounts:remove_member", args=[team, alice.pk]), {}),
        "offer ownership to carol": (
            "post",
            reverse("accounts:offer_ownership", args=[team, carol.pk]),
            {},
        ),
        "rename": ("post", reverse("accounts:rename_team", args=[team]), {"name": "Acme Ltd"}),
        "delete": ("post", reverse("accounts:delete_team", args=[team]), {"confirm_name": "Acme"}),
        "leave": ("post", reverse("accounts:leave_team", args=[team]), {}),
    }
    return requests[action]


def cases(*, allowed: bool) -> list:
    return [
        pytest.param(action, who, status, id=f"{who}-{action}")
        for action, statuses in EXPECTED.items()
        for who, status in zip(CHARACTERS, statuses, strict=True)
        if status is not None and (status in (OK_PAGE, DONE)) == allowed
    ]


@pytest.fixture
def dave_invitation(acme, bob):
    return make_invitation(acme, "dave@example.com", invited_by=bob)


@pytest.mark.parametrize(("action", "who", "status"), cases(allowed=False))
def test_what_a_role_does_not_allow_is_refused_and_changes_nothing(
    request, login, acme, dave_invitation, action, who, status
):
    method, url, data = action_request(action, acme, dave_invitation)
    before = team_state(acme)

    response = getattr(login(request.getfixturevalue(who)), method)(url, data)

    assert response.status_code == status
    assert team_state(acme) == before


@pytest.mark.parametrize(("action", "who", "status"), cases(allowed=True))
def test_what_a_role_allows_works(request, login, acme, dave_invitation, action, who, status):
    method, url, data = action_request(action, acme, dave_invitation)
    before = team_state(acme)

    response = getattr(login(request.getfixturevalue(who)), method)(url, data)

    assert response.status_code == status
    if method == "post":
        assert team_state(acme) != before


@pytest.mark.parametrize("who", ["alice", "bob", "carol"])
@pytest.mark.parametrize("action", EXPECTED)
def test_a_deleted_team_is_404_for_its_former_members_and_nothing_changes(
    request, login, acme, alice, dave_invitation, action, who
):
    archive_team(team=acme, actor=membership(acme, alice))
    method, url, data = action_request(action, acme, dave_invitation)
    before = team_state(acme)

    response = getattr(login(request.getfixturevalue(who)), method)(url, data)

    assert response.status_code == 404
    assert team_state(acme) == before


def test_signed_out_visitors_are_sent_to_sign_in_from_every_team_page(client, acme):
    response = client.get(reverse("accounts:members", args=[acme.public_id]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_an_unknown_team_id_is_404_for_everyone(login, alice):
    response = login(alice).get(
        reverse("accounts:members", args=["00000000-0000-0000-0000-000000000000"])
    )

    assert response.status_code == 404


def test_another_teams_invitation_is_404_through_your_teams_url(login, acme, bob, charlie):
    globex = create_team(name="Globex", owner=charlie)
    theirs = make_invitation(globex, "erin@example.com", invited_by=charlie)
    before = team_state(globex)

    response = login(bob).post(
        reverse("accounts:revoke_invitation", args=[acme.public_id, theirs.pk])
    )

    assert response.status_code == 404
    assert team_state(globex) == before


def test_another_teams_member_is_404_through_your_teams_url(login, acme, alice, charlie):
    globex = create_team(name="Globex", owner=charlie)
    dave = add_member(globex, alice, Role.MEMBER)
    before = team_state(globex)

    response = login(alice).post(
        reverse("accounts:change_role", args=[acme.public_id, dave.pk]), {"role": "admin"}
    )

    assert response.status_code == 404
    assert team_state(globex) == before


@pytest.fixture
def offer_to_carol(acme, alice, carol):
    return OwnershipOffer.objects.create(
        team=acme, offered_by=membership(acme, alice), offered_to=membership(acme, carol)
    )


@pytest.mark.parametrize(
    ("who", "status"), [("alice", 403), ("bob", 403), ("carol", 200), ("charlie", 404)]
)
def test_only_the_person_offered_ownership_sees_the_offer_page(
    request, login, acme, offer_to_carol, who, status
):
    response = login(request.getfixturevalue(who)).get(
        reverse("accounts:ownership_offer", args=[acme.public_id])
    )

    assert response.status_code == status


@pytest.mark.parametrize(("who", "status"), [("alice", 403), ("bob", 403), ("charlie", 404)])
def test_only_the_person_offered_ownership_can_accept_it(
    request, login, acme, offer_to_carol, who, status
):
    before = team_state(acme)

    response = login(request.getfixturevalue(who)).post(
        reverse("accounts:accept_ownership", args=[acme.public_id])
    )

    assert response.status_code == status
    assert team_state(acme) == before


@pytest.mark.parametrize(("who", "status"), [("bob", 403), ("charlie", 404)])
def test_only_owners_and_the_person_offered_can_close_the_offer(
    request, login, acme, offer_to_carol, who, status
):
    before = team_state(acme)

    response = login(request.getfixturevalue(who)).post(
        reverse("accounts:close_ownership_offer", args=[acme.public_id])
    )

    assert response.status_code == status
    assert team_state(acme) == before


@pytest.mark.parametrize("who", ["alice", "bob", "carol"])
@pytest.mark.parametrize("name", ["ownership_offer", "accept_ownership", "close_ownership_offer"])
def test_ownership_pages_are_404_when_nothing_is_offered(request, login, acme, who, name):
    client = login(request.getfixturevalue(who))
    url = reverse(f"accounts:{name}", args=[acme.public_id])

    response = client.get(url) if name == "ownership_offer" else client.post(url)

    assert response.status_code == 404
