import pytest
from django.urls import reverse

from apps.accounts import invitations
from apps.accounts.models import Role, TeamEvent, TeamEventKind
from apps.accounts.services import record_team_event
from tests.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def activity_url(team, page: int | None = None) -> str:
    url = reverse("accounts:activity", args=[team.public_id])
    return f"{url}?page={page}" if page else url


def test_the_activity_page_lists_team_events_newest_first(login, acme, alice, bob):
    invitations.invite(
        team=acme, email="dave@example.com", role=Role.ADMIN, invited_by=bob, site_url=""
    )

    page = login(alice).get(activity_url(acme))

    assert page.status_code == 200
    invited = page.text.index("Invited")
    created = page.text.index("Team created")
    assert invited < created
    assert "dave@example.com" in page.text
    assert "As admin" in page.text


def test_the_log_outlives_the_people_in_it(login, acme, alice):
    erin = UserFactory.create(email="erin@example.com")
    add_member(acme, erin, Role.ADMIN)
    invitations.invite(
        team=acme, email="dave@example.com", role=Role.MEMBER, invited_by=erin, site_url=""
    )

    erin.delete()

    event = TeamEvent.objects.get(kind=TeamEventKind.INVITED)
    assert (event.actor, event.actor_email) == (None, "erin@example.com")
    assert "erin@example.com" in login(alice).get(activity_url(acme)).text


def test_staff_grants_show_without_a_person(login, acme, alice):
    record_team_event(
        team=acme, kind=TeamEventKind.CREDITS_GRANTED, detail="500 credits: welcome bonus"
    )

    page = login(alice).get(activity_url(acme))

    assert "Credits granted" in page.text
    assert "Unmark staff" in page.text
    assert "500 credits: welcome bonus" in page.text


def test_the_log_is_paged(login, acme, alice):
    for n in range(60):
        record_team_event(team=acme, kind=TeamEventKind.RENAMED, actor=alice, detail=f"name {n}")
    client = login(alice)

    first, second = client.get(activity_url(acme)), client.get(activity_url(acme, page=2))

    assert "name 59" in first.text
    assert "name 9<" not in first.text
    assert "Page 1 of 2" in first.text
    assert "name 9<" in second.text
    assert "Team created" in second.text


def test_other_teams_events_are_not_shown(login, acme, alice, charlie):
    personal = charlie.memberships.get().team
    record_team_event(team=personal, kind=TeamEventKind.RENAMED, actor=charlie, detail="secret")

    page = login(alice).get(activity_url(acme))

    assert "secret" not in page.text
