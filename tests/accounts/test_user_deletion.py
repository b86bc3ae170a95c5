"""Staff deleting a person in the admin never leaves a team without an owner."""

import pytest
from django.urls import reverse

from apps.accounts.models import Membership, Role, Team, TeamEvent, TeamEventKind, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("ops@unmark.example", "a-long-unusual-pass-1")


def delete_in_admin(client, person: User):
    return client.post(reverse("admin:accounts_user_delete", args=[person.pk]), {"post": "yes"})


def delete_selected_in_admin(client, *people: User):
    return client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [p.pk for p in people], "post": "yes"},
    )


def test_the_only_owner_of_a_team_with_members_cannot_be_deleted(login, staff, alice, acme):
    client = login(staff)

    page = client.get(reverse("admin:accounts_user_delete", args=[alice.pk]))
    response = delete_in_admin(client, alice)

    assert "Acme: alice@example.com is its only owner." in page.text
    assert response.status_code == 200
    assert "Acme: alice@example.com is its only owner." in response.text
    assert User.objects.filter(pk=alice.pk).exists()
    assert Membership.objects.filter(team=acme, role=Role.OWNER).get().user == alice


def test_deleting_a_selection_with_an_only_owner_deletes_nobody(login, staff, alice, charlie, acme):
    response = delete_selected_in_admin(login(staff), alice, charlie)

    assert "Acme: alice@example.com is its only owner." in response.text
    assert User.objects.filter(pk__in=[alice.pk, charlie.pk]).count() == 2


def test_once_another_member_owns_the_team_the_person_can_be_deleted(
    login, staff, alice, bob, acme
):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)

    response = delete_in_admin(login(staff), alice)

    assert response.status_code == 302
    assert not User.objects.filter(pk=alice.pk).exists()
    assert list(
        Membership.objects.filter(team=acme, role=Role.OWNER).values_list("user", flat=True)
    ) == [bob.pk]
    assert Team.objects.get(pk=acme.pk).archived_at is None


def test_a_deleted_persons_own_teams_are_deleted_with_them(login, staff, charlie):
    personal = Team.objects.get(memberships__user=charlie)

    delete_in_admin(login(staff), charlie)

    personal.refresh_from_db()
    assert not User.objects.filter(pk=charlie.pk).exists()
    assert personal.archived_at is not None
    event = TeamEvent.objects.get(team=personal, kind=TeamEventKind.ARCHIVED)
    assert (event.actor, event.detail) == (None, "Its only member was deleted.")
    assert not Team.objects.active().filter(memberships__isnull=True).exists()


def team_form(team: Team, roles: dict[int, str]) -> dict[str, object]:
    """The admin's team form as staff would send it, with each membership's role from `roles`."""
    memberships = list(Membership.objects.filter(team=team).order_by("pk"))
    data: dict[str, object] = {
        "name": team.name,
        "memberships-TOTAL_FORMS": len(memberships),
        "memberships-INITIAL_FORMS": len(memberships),
        "memberships-MIN_NUM_FORMS": 0,
        "memberships-MAX_NUM_FORMS": 1000,
    }
    for i, membership in enumerate(memberships):
        data |= {
            f"memberships-{i}-id": membership.pk,
            f"memberships-{i}-team": team.pk,
            f"memberships-{i}-user": membership.user_id,
            f"memberships-{i}-role": roles.get(membership.user_id, membership.role),
            f"memberships-{i}-monthly_credit_limit": "",
        }
    return data


def test_staff_cannot_demote_a_teams_only_owner_in_the_admin(login, staff, alice, acme):
    url = reverse("admin:accounts_team_change", args=[acme.pk])

    response = login(staff).post(url, team_form(acme, {alice.pk: Role.ADMIN}))

    assert response.status_code == 200
    assert "A team with members needs an owner" in response.text
    assert Membership.objects.get(team=acme, user=alice).role == Role.OWNER


def test_staff_may_hand_ownership_over_in_the_admin(login, staff, alice, bob, acme):
    url = reverse("admin:accounts_team_change", args=[acme.pk])

    response = login(staff).post(url, team_form(acme, {alice.pk: Role.ADMIN, bob.pk: Role.OWNER}))

    assert response.status_code == 302
    assert Membership.objects.get(team=acme, role=Role.OWNER).user == bob
