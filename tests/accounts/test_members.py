from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts import services
from apps.accounts.models import Membership, Role, TeamEvent, TeamEventKind
from apps.accounts.services import ActionRefused, create_team
from apps.accounts.usage import start_of_month
from apps.jobs.models import Job, JobState
from tests.accounts.helpers import membership, team_state
from tests.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def members_url(team) -> str:
    return reverse("accounts:members", args=[team.public_id])


def job(team, user, *, state=JobState.SUCCEEDED, credits=10) -> Job:
    return Job.objects.create(
        team=team,
        created_by=user,
        source_url="https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef",
        provider="kie",
        credits=credits,
        state=state,
    )


def row_of(page_text: str, email: str) -> str:
    """The members table's row for `email`."""
    return page_text.split(f'<td class="email">{email}', 1)[1].split("</tr>", 1)[0]


# --- The members page ----------------------------------------------------------------------


def test_the_members_page_lists_everyone_with_role_and_joined_date(login, acme, carol):
    page = login(carol).get(members_url(acme))

    assert page.status_code == 200
    for email, role in [("alice", "Owner"), ("bob", "Admin"), ("carol", "Member")]:
        assert f">{role}</span>" in row_of(page.text, f"{email}@example.com")
    joined = membership(acme, carol).created_at
    assert f"{joined:%-d %b %Y}" in row_of(page.text, "carol@example.com")


def test_credits_used_this_month_count_only_charged_jobs_of_this_month_in_this_team(
    login, acme, alice, carol
):
    job(acme, carol, state=JobState.SUCCEEDED)
    job(acme, carol, state=JobState.PROCESSING)
    job(acme, carol, state=JobState.FAILED)
    job(acme, carol, state=JobState.CANCELED)
    Job.objects.filter(pk=job(acme, carol).pk).update(
        created_at=start_of_month() - timedelta(seconds=1)
    )
    job(create_team(name="Elsewhere", owner=carol), carol)
    job(acme, alice, credits=30)

    page = login(alice).get(members_url(acme))

    assert '<td class="num">2 videos</td>' in row_of(page.text, "carol@example.com")
    assert '<td class="num">3 videos</td>' in row_of(page.text, "alice@example.com")
    assert '<td class="num">0 videos</td>' in row_of(page.text, "bob@example.com")


def test_the_members_page_takes_the_same_queries_however_many_members(login, acme, alice):
    client = login(alice)
    client.get(members_url(acme))  # the first visit also saves the session
    with CaptureQueriesContext(connection) as three_members:
        client.get(members_url(acme))
    for _ in range(5):
        person = UserFactory.create(personal_team=False)
        add_member(acme, person)
        job(acme, person)

    with CaptureQueriesContext(connection) as eight_members:
        client.get(members_url(acme))

    assert len(eight_members) == len(three_members)


def test_the_header_links_to_the_current_teams_members(login, alice):
    personal = Membership.objects.get(user=alice).team

    page = login(alice).get(personal.get_absolute_url())

    assert f'href="{members_url(personal)}"' in page.text


# --- Roles ---------------------------------------------------------------------------------


def test_an_admin_makes_a_member_an_admin(login, acme, bob, carol):
    response = login(bob).post(
        reverse("accounts:change_role", args=[acme.public_id, membership(acme, carol).pk]),
        {"role": "admin"},
        follow=True,
    )

    assert membership(acme, carol).role == Role.ADMIN
    assert "carol@example.com is now admin." in response.text
    event = TeamEvent.objects.get(team=acme, kind=TeamEventKind.ROLE_CHANGED)
    assert (event.actor_email, event.subject_email, event.detail) == (
        "bob@example.com",
        "carol@example.com",
        "Member → Admin",
    )


def test_an_admin_may_step_down_to_member(login, acme, bob):
    login(bob).post(
        reverse("accounts:change_role", args=[acme.public_id, membership(acme, bob).pk]),
        {"role": "member"},
    )

    assert membership(acme, bob).role == Role.MEMBER


def test_nobody_is_made_owner_by_a_role_change(login, acme, alice, carol):
    before = team_state(acme)

    login(alice).post(
        reverse("accounts:change_role", args=[acme.public_id, membership(acme, carol).pk]),
        {"role": "owner"},
    )

    assert team_state(acme) == before


def test_an_owner_demotes_another_owner(login, acme, alice, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)

    login(alice).post(
        reverse("accounts:change_role", args=[acme.public_id, membership(acme, bob).pk]),
        {"role": "member"},
    )

    assert membership(acme, bob).role == Role.MEMBER


def test_the_last_owner_can_not_step_down(login, acme, alice):
    before = team_state(acme)

    response = login(alice).post(
        reverse("accounts:change_role", args=[acme.public_id, membership(acme, alice).pk]),
        {"role": "admin"},
        follow=True,
    )

    assert "You are the only owner of Acme. Transfer ownership to another member first" in (
        response.text
    )
    assert team_state(acme) == before


def test_an_owner_steps_down_when_another_owner_remains(acme, alice, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)

    services.change_role(
        actor=membership(acme, alice), target=membership(acme, alice), role=Role.ADMIN
    )

    assert membership(acme, alice).role == Role.ADMIN


def test_a_change_by_someone_demoted_meanwhile_is_refused(acme, alice, bob, carol):
    bob_as_he_was = membership(acme, bob)
    Membership.objects.filter(pk=bob_as_he_was.pk).update(role=Role.MEMBER)

    with pytest.raises(PermissionDenied):
        services.change_role(actor=bob_as_he_was, target=membership(acme, carol), role=Role.ADMIN)

    assert membership(acme, carol).role == Role.MEMBER


# --- Monthly limits ------------------------------------------------------------------------


def test_an_admin_sets_and_lifts_a_members_monthly_limit(login, acme, bob, carol):
    url = reverse("accounts:set_limit", args=[acme.public_id, membership(acme, carol).pk])
    client = login(bob)

    response = client.post(url, {"monthly_credit_limit": "10"}, follow=True)  # videos
    assert membership(acme, carol).monthly_credit_limit == 100
    assert "carol@example.com may make 10 videos a month (100 credits)." in response.text
    assert '<td class="num">0 of 10 videos</td>' in row_of(response.text, "carol@example.com")

    client.post(url, {"monthly_credit_limit": ""})
    assert membership(acme, carol).monthly_credit_limit is None
    details = list(
        TeamEvent.objects.filter(kind=TeamEventKind.LIMIT_CHANGED)
        .order_by("pk")
        .values_list("detail", flat=True)
    )
    assert details == ["10 videos a month (100 credits)", "No limit"]


def test_a_members_page_reads_their_use_against_their_limit_in_videos(login, acme, bob, carol):
    Membership.objects.filter(team=acme, user=carol).update(monthly_credit_limit=20)
    job(acme, carol)

    page = login(bob).get(
        reverse("accounts:member", args=[acme.public_id, membership(acme, carol).pk])
    )

    assert '<p class="stat">1 of 2 videos</p>' in page.text
    assert "(10 credits)" in page.text


def test_an_admin_cannot_lift_their_own_limit(login, acme, alice, bob):
    bobs = membership(acme, bob)
    bobs.monthly_credit_limit = 50
    bobs.save()
    before = team_state(acme)

    response = login(bob).post(
        reverse("accounts:set_limit", args=[acme.public_id, bobs.pk]), {"monthly_credit_limit": ""}
    )

    assert response.status_code == 403
    assert membership(acme, bob).monthly_credit_limit == 50
    assert team_state(acme) == before


def test_an_owner_may_set_their_own_limit(login, acme, alice):
    url = reverse("accounts:set_limit", args=[acme.public_id, membership(acme, alice).pk])

    login(alice).post(url, {"monthly_credit_limit": "50"})  # videos

    assert membership(acme, alice).monthly_credit_limit == 500


def test_a_negative_limit_is_refused(login, acme, bob, carol):
    before = team_state(acme)

    response = login(bob).post(
        reverse("accounts:set_limit", args=[acme.public_id, membership(acme, carol).pk]),
        {"monthly_credit_limit": "-5"},
        follow=True,
    )

    assert "Ensure this value is greater than or equal to 0." in response.text
    assert team_state(acme) == before


# --- Removing and leaving ------------------------------------------------------------------


def test_removing_a_member_keeps_their_jobs_and_the_history(login, acme, bob, carol):
    carols_job = job(acme, carol)

    response = login(bob).post(
        reverse("accounts:remove_member", args=[acme.public_id, membership(acme, carol).pk]),
        follow=True,
    )

    assert "Removed carol@example.com." in response.text
    assert not Membership.objects.filter(team=acme, user=carol).exists()
    carols_job.refresh_from_db()
    assert (carols_job.team, carols_job.created_by) == (acme, carol)
    event = TeamEvent.objects.get(kind=TeamEventKind.REMOVED)
    assert (event.subject_email, event.detail) == ("carol@example.com", "Was member")


def test_a_removed_member_can_no_longer_open_the_team(login, acme, bob, carol):
    client = login(carol)
    client.get(members_url(acme))
    services.remove_member(actor=membership(acme, bob), target=membership(acme, carol))

    assert client.get(members_url(acme)).status_code == 404
    assert "Working in carol&#x27;s team" in client.get(reverse("dashboard"), follow=True).text


def test_an_owner_removes_another_owner(acme, alice, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)

    services.remove_member(actor=membership(acme, alice), target=membership(acme, bob))

    assert not Membership.objects.filter(team=acme, user=bob).exists()


def test_a_member_leaves(login, acme, carol):
    response = login(carol).post(reverse("accounts:leave_team", args=[acme.public_id]))

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:teams")
    assert not Membership.objects.filter(team=acme, user=carol).exists()
    event = TeamEvent.objects.get(kind=TeamEventKind.LEFT)
    assert (event.actor_email, event.subject_email) == ("carol@example.com", "carol@example.com")


def test_the_last_owner_can_not_leave(login, acme, alice):
    before = team_state(acme)

    response = login(alice).post(reverse("accounts:leave_team", args=[acme.public_id]), follow=True)

    assert "You are the only owner of Acme. Transfer ownership to another member first" in (
        response.text
    )
    assert team_state(acme) == before


def test_an_owner_leaves_when_another_owner_remains(acme, alice, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)

    services.leave_team(membership=membership(acme, alice))

    assert list(
        Membership.objects.filter(team=acme).filter(role=Role.OWNER).values_list("user", flat=True)
    ) == [bob.pk]


def test_nobody_leaves_their_personal_team_empty(alice):
    personal = Membership.objects.get(user=alice, team__is_personal=True)

    with pytest.raises(ActionRefused, match="only member of alice's team"):
        services.leave_team(membership=personal)

    assert Membership.objects.filter(pk=personal.pk).exists()


def test_a_team_keeps_an_owner_whatever_the_order_of_changes(acme, alice, bob):
    """Two owners each demoting the other: the second change sees the first and is refused."""
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)
    alice_then, bob_then = membership(acme, alice), membership(acme, bob)

    services.change_role(actor=alice_then, target=bob_then, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.change_role(actor=bob_then, target=alice_then, role=Role.ADMIN)

    assert Membership.objects.filter(team=acme).filter(role=Role.OWNER).count() == 1


def test_a_job_made_in_the_team_stays_after_its_maker_leaves(acme, carol):
    made = job(acme, carol, state=JobState.SUCCEEDED)

    services.leave_team(membership=membership(acme, carol))

    assert Job.objects.filter(pk=made.pk, team=acme, created_by=carol).exists()
