import re

import pytest
from django.urls import reverse

from apps.accounts.access import SESSION_KEY
from apps.accounts.models import Membership, Role, Team, TeamEvent, TeamEventKind, User
from apps.accounts.services import VIDEOS_IN_FLIGHT
from apps.billing import ledger
from apps.billing.models import LedgerEntry
from apps.jobs.models import Job, JobState
from tests.accounts.helpers import membership, team_state
from tests.factories import make_invitation, make_job

pytestmark = pytest.mark.django_db


def settings_url(team) -> str:
    return reverse("accounts:team_settings", args=[team.public_id])


# --- Creating ------------------------------------------------------------------------------


def test_the_create_page_asks_for_a_name(login, alice):
    page = login(alice).get(reverse("accounts:create_team"))

    assert page.status_code == 200
    assert 'name="name"' in page.text


def test_creating_a_team_makes_you_its_owner_and_switches_to_it(login, alice):
    client = login(alice)

    response = client.post(reverse("accounts:create_team"), {"name": "  Globex  "})

    team = Team.objects.get(name="Globex")
    assert not team.is_personal
    assert membership(team, alice).role == Role.OWNER
    assert response["Location"] == reverse("accounts:members", args=[team.public_id])
    assert client.session[SESSION_KEY] == str(team.public_id)
    assert client.get(reverse("dashboard"))["Location"] == team.get_absolute_url()
    event = TeamEvent.objects.get(team=team)
    assert (event.kind, event.actor, event.detail) == (TeamEventKind.CREATED, alice, "Globex")


def test_a_new_team_has_its_own_credits_starting_at_none(login, alice):
    client = login(alice)

    client.post(reverse("accounts:create_team"), {"name": "Globex"})

    globex = Team.objects.get(name="Globex")
    assert ledger.available_credits(globex) == 0
    assert not LedgerEntry.objects.filter(team=globex).exists()
    assert re.search(
        r'class="balance-chip is-low"[^>]*><strong data-testid="chip-available">0</strong>',
        client.get(globex.get_absolute_url()).text,
    )
    page = client.get(reverse("billing:overview", args=[globex.public_id])).text
    assert "Shared by everyone in Globex." in page
    assert 'data-testid="available">0 <small>credits available' in page


def test_a_team_needs_a_name(login, alice):
    response = login(alice).post(reverse("accounts:create_team"), {"name": "   "})

    assert response.status_code == 200
    assert "This field is required." in response.text
    assert Team.objects.count() == 1


def test_the_teams_page_links_each_teams_members_and_offers_to_create_one(login, alice, acme):
    page = login(alice).get(reverse("accounts:teams"))

    assert reverse("accounts:members", args=[acme.public_id]) in page.text
    assert reverse("accounts:create_team") in page.text


# --- Renaming ------------------------------------------------------------------------------


def test_an_admin_renames_the_team(login, acme, bob):
    response = login(bob).post(
        reverse("accounts:rename_team", args=[acme.public_id]), {"name": "Acme Ltd"}, follow=True
    )

    acme.refresh_from_db()
    assert acme.name == "Acme Ltd"
    assert "The team is now called Acme Ltd." in response.text
    event = TeamEvent.objects.get(kind=TeamEventKind.RENAMED)
    assert (event.actor_email, event.detail) == ("bob@example.com", "Acme → Acme Ltd")


def test_renaming_to_nothing_is_refused(login, acme, bob):
    before = team_state(acme)

    response = login(bob).post(reverse("accounts:rename_team", args=[acme.public_id]), {"name": ""})

    assert response.status_code == 200
    assert "This field is required." in response.text
    assert team_state(acme) == before


def test_members_see_settings_without_rename_or_delete(login, acme, carol):
    page = login(carol).get(settings_url(acme))

    assert "Leave the team" in page.text
    assert "Rename" not in page.text
    assert "Delete the team" not in page.text


def test_admins_see_rename_but_not_delete(login, acme, bob):
    page = login(bob).get(settings_url(acme))

    assert "Rename" in page.text
    assert "Delete the team" not in page.text


# --- Deleting (archiving) ------------------------------------------------------------------


def delete(client, team, typed: str):
    return client.post(
        reverse("accounts:delete_team", args=[team.public_id]), {"confirm_name": typed}
    )


def test_deleting_needs_the_teams_name_typed_exactly(login, acme, alice):
    before = team_state(acme)

    response = delete(login(alice), acme, "acme")

    assert response.status_code == 200
    assert "Type Acme exactly to delete the team." in response.text
    assert team_state(acme) == before


def test_the_owner_deletes_the_team_by_archiving_it(login, acme, alice, bob):
    open_invitation = make_invitation(acme, "dave@example.com", invited_by=bob)
    client = login(alice)

    response = delete(client, acme, "Acme")

    assert response["Location"] == reverse("accounts:teams")
    acme.refresh_from_db()
    assert acme.archived_at is not None
    assert Membership.objects.filter(team=acme).count() == 3  # kept for staff
    open_invitation.refresh_from_db()
    assert open_invitation.revoked_at == acme.archived_at
    assert TeamEvent.objects.filter(team=acme, kind=TeamEventKind.ARCHIVED, actor=alice).exists()
    assert "Deleted Acme." in client.get(reverse("accounts:teams")).text


def test_a_deleted_teams_jobs_and_history_stay(acme, alice, carol, login):
    job = Job.objects.create(
        team=acme,
        created_by=carol,
        source_url="https://sora.chatgpt.com/p/s_1",
        provider="kie",
        credits=10,
        state=JobState.SUCCEEDED,
    )

    delete(login(alice), acme, "Acme")

    assert Job.objects.filter(pk=job.pk, team=acme).exists()
    assert TeamEvent.objects.filter(team=acme).count() == 2  # created, deleted


def test_a_team_with_videos_in_flight_is_not_deleted_as_an_account_is_not(acme, alice, login):
    job = make_job(acme, state=JobState.PROCESSING)
    before = team_state(acme)
    client = login(alice)

    response = delete(client, acme, "Acme")

    assert response["Location"] == settings_url(acme)
    assert team_state(acme) == before
    assert not Team.objects.get(pk=acme.pk).is_archived
    assert VIDEOS_IN_FLIGHT in client.get(settings_url(acme)).text  # the account's words too
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)
    assert delete(client, acme, "Acme")["Location"] == reverse("accounts:teams")
    assert Team.objects.get(pk=acme.pk).is_archived


def test_a_deleted_team_is_gone_for_its_members(login, acme, alice, bob):
    bobs_client = login(bob)
    bobs_client.post(reverse("accounts:switch_team"), {"team": acme.public_id})

    delete(login(alice), acme, "Acme")

    assert bobs_client.get(reverse("accounts:members", args=[acme.public_id])).status_code == 404
    dashboard = bobs_client.get(reverse("dashboard"), follow=True)
    assert "Working in bob&#x27;s team" in dashboard.text
    assert str(acme.public_id) not in dashboard.text  # not in the switcher
    assert "Acme" not in bobs_client.get(reverse("accounts:teams")).text
    switch = bobs_client.post(reverse("accounts:switch_team"), {"team": acme.public_id})
    assert switch.status_code == 404


def test_a_deleted_teams_pages_are_404_for_its_owner(login, acme, alice, carol):
    Team.objects.filter(pk=acme.pk).update(archived_at="2026-01-01T00:00:00Z")
    client = login(alice)

    for url in (
        acme.get_absolute_url(),
        reverse("billing:overview", args=[acme.public_id]),
        reverse("accounts:member", args=[acme.public_id, membership(acme, carol).pk]),
    ):
        assert client.get(url).status_code == 404


def test_a_personal_team_can_not_be_deleted(login, alice):
    personal = Team.objects.get(memberships__user=alice, is_personal=True)
    before = team_state(personal)
    client = login(alice)

    response = delete(client, personal, personal.name)

    assert response.status_code == 302
    assert "A personal team can&#x27;t be deleted." in client.get(settings_url(personal)).text
    assert team_state(personal) == before


def test_the_settings_page_does_not_offer_to_delete_a_personal_team(login, alice):
    personal = Team.objects.get(memberships__user=alice, is_personal=True)

    page = login(alice).get(settings_url(personal))

    assert "Delete the team" not in page.text
    assert "This is your personal team: it can't be deleted." in page.text


def test_someone_whose_only_team_was_deleted_is_asked_to_make_one(login, acme, alice, carol):
    Membership.objects.filter(user=carol).exclude(team=acme).delete()
    delete(login(alice), acme, "Acme")

    response = login(carol).get(reverse("dashboard"))

    assert response["Location"] == reverse("accounts:teams")


def test_team_pages_name_the_team_in_the_header(login, acme, carol):
    page = login(carol).get(reverse("accounts:members", args=[acme.public_id]))

    assert re.search(r'<summary aria-label="Current team">Acme</summary>', page.text)


# --- Staff ---------------------------------------------------------------------------------


@pytest.fixture
def staff(db):
    return User.objects.create_superuser("staff@example.com", "x")


def test_staff_find_deleted_teams_in_the_admin(login, staff, acme, alice):
    delete(login(alice), acme, "Acme")

    page = login(staff).get(reverse("admin:accounts_team_changelist") + "?archived_at__isempty=0")

    assert page.status_code == 200
    assert ">Acme<" in page.text


def test_staff_read_the_audit_log_and_invitations_but_can_not_edit_them(login, staff, acme, bob):
    invitation = make_invitation(acme, "dave@example.com", invited_by=bob)
    event = TeamEvent.objects.get(team=acme, kind=TeamEventKind.CREATED)
    client = login(staff)

    assert client.get(reverse("admin:accounts_teamevent_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_invitation_changelist")).status_code == 200
    detail = client.get(reverse("admin:accounts_invitation_change", args=[invitation.pk]))
    assert detail.status_code == 200
    assert invitation.token_hash not in detail.text
    assert client.get(reverse("admin:accounts_teamevent_add")).status_code == 403
    client.post(reverse("admin:accounts_teamevent_delete", args=[event.pk]), {"post": "yes"})
    assert TeamEvent.objects.filter(pk=event.pk).exists()
