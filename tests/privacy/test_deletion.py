"""Deleting an account: team rules first, history kept whole, files gone where unneeded."""

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Membership, Role, Team, TeamEvent, TeamEventKind, User
from apps.accounts.services import VIDEOS_IN_FLIGHT, create_team, record_team_event
from apps.billing import ledger
from apps.billing.models import LedgerEntry, Wallet
from apps.jobs.models import Job, JobState
from apps.privacy.deletion import DELETED_NAME
from tests.factories import PASSWORD, add_member

pytestmark = pytest.mark.django_db

DELETE_URL = reverse("privacy:delete_account")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media"},
        },
    }


def stored(name: str) -> str:
    return default_storage.save(name, ContentFile(b"video bytes"))


def make_job(team, user, *, state: JobState = JobState.SUCCEEDED, **fields) -> Job:
    return Job.objects.create(
        team=team, created_by=user, provider="kie", credits=10, state=state,
        source_url="https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef", **fields,
    )  # fmt: skip


def delete(client, password: str = PASSWORD):
    return client.post(DELETE_URL, {"password": password})


def personal_team(user) -> Team:
    return Team.objects.get(is_personal=True, memberships__user=user)


def test_a_member_deletes_their_account_and_the_teams_history_stays(login, acme, alice, carol):
    ledger.grant(team=acme, credits=100, key="grant:acme", memo="Staff grant")
    job = make_job(acme, carol)
    ledger.hold(team=acme, credits=10, key=f"hold:{job.pk}", job=job)
    ledger.capture(job=job)
    entries_before = list(LedgerEntry.objects.values_list("pk", "team", "kind", "amount"))
    acme_wallet = Wallet.objects.values_list("balance", "held").get(team=acme)
    own_team = personal_team(carol)
    client = login(carol)

    response = delete(client)

    assert response["Location"] == reverse("home")
    assert not User.objects.filter(email="carol@example.com").exists()
    assert not Membership.objects.filter(team=acme, user__email="carol@example.com").exists()
    job.refresh_from_db()
    assert job.created_by is None  # the video stays in Acme, made by "a former member"
    assert list(LedgerEntry.objects.values_list("pk", "team", "kind", "amount")) == entries_before
    assert Wallet.objects.values_list("balance", "held").get(team=acme) == acme_wallet
    left = TeamEvent.objects.filter(team=acme).latest("created_at", "id")
    assert (left.kind, left.subject_email) == (TeamEventKind.LEFT, DELETED_NAME)
    own_team.refresh_from_db()
    assert own_team.is_archived
    assert SESSION_KEY not in client.session


def test_the_audit_log_no_longer_names_them(login, acme, alice, carol):
    record_team_event(
        team=acme, kind=TeamEventKind.ROLE_CHANGED, actor=alice, subject_email="carol@example.com",
        detail="carol@example.com is now an admin",
    )  # fmt: skip

    delete(login(carol))

    event = TeamEvent.objects.get(kind=TeamEventKind.ROLE_CHANGED)
    assert event.subject_email == DELETED_NAME
    assert event.detail == f"{DELETED_NAME} is now an admin"
    assert event.actor_email == "alice@example.com"
    assert not TeamEvent.objects.filter(actor_email__iexact="carol@example.com").exists()
    assert not TeamEvent.objects.filter(subject_email__iexact="carol@example.com").exists()


def test_their_files_go_where_no_team_still_needs_them(
    login, acme, carol, django_capture_on_commit_callbacks
):
    own = personal_team(carol)
    only_theirs = stored("results/only-theirs.mp4")
    shared = stored("originals/shared.mp4")
    in_acme = stored("results/in-acme.mp4")
    make_job(own, carol, result_file=only_theirs, original_file=shared)
    make_job(acme, carol, result_file=in_acme, original_file=shared)

    with django_capture_on_commit_callbacks(execute=True):
        delete(login(carol))

    assert not default_storage.exists(only_theirs)
    assert default_storage.exists(shared)  # an Acme video still uses it
    assert default_storage.exists(in_acme)
    assert Job.objects.get(team=own).result_file == ""
    assert Job.objects.get(team=acme).result_file == in_acme


def test_the_only_owner_of_a_team_with_members_must_hand_it_over_first(login, acme, alice):
    page = login(alice).get(DELETE_URL)

    assert "Hand over or delete the teams you alone own" in page.text.replace("First, h", "H")
    assert reverse("accounts:members", args=[acme.public_id]) in page.text
    assert reverse("accounts:team_settings", args=[acme.public_id]) in page.text
    assert 'name="password"' not in page.text

    refused = delete(login(alice))

    assert refused.status_code == 400
    assert User.objects.filter(email="alice@example.com").exists()
    assert acme.memberships.get(user=alice).role == Role.OWNER


def test_the_only_member_of_a_team_must_delete_it_first(login, charlie):
    side_project = create_team(name="Side project", owner=charlie)

    page = login(charlie).get(DELETE_URL)
    delete(login(charlie))

    assert "delete the team" in page.text
    assert reverse("accounts:team_settings", args=[side_project.public_id]) in page.text
    assert User.objects.filter(email="charlie@example.com").exists()


def test_an_owner_with_a_co_owner_may_go(login, acme, alice, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)

    delete(login(alice))

    assert not User.objects.filter(email="alice@example.com").exists()
    assert list(acme.memberships.values_list("user__email", "role")) == [
        ("bob@example.com", Role.OWNER),
        ("carol@example.com", Role.MEMBER),
    ]
    assert not Team.objects.get(pk=acme.pk).is_archived


def test_a_wrong_password_changes_nothing(login, carol):
    response = delete(login(carol), password="not-my-password")

    assert response.status_code == 400
    assert "That is not your password." in response.text
    assert User.objects.filter(email="carol@example.com").exists()
    assert not personal_team(carol).is_archived


def test_their_other_sessions_end_too(acme, carol):
    elsewhere = Client()
    assert (
        elsewhere.post(
            reverse("account_login"), {"login": carol.email, "password": PASSWORD}
        ).status_code
        == 302
    )
    here = Client()
    here.post(reverse("account_login"), {"login": carol.email, "password": PASSWORD})

    delete(here)

    assert elsewhere.get(reverse("privacy:my_data")).status_code == 302  # signed out


def test_a_team_they_only_joined_keeps_its_other_members(login, charlie, carol):
    club = create_team(name="Club", owner=charlie)
    add_member(club, carol)

    delete(login(carol))

    assert list(club.memberships.values_list("user__email", flat=True)) == ["charlie@example.com"]


def test_videos_still_in_progress_in_the_personal_team_hold_the_deletion(login, carol):
    make_job(personal_team(carol), carol, state=JobState.PROCESSING)

    client = login(carol)

    response = delete(client)

    assert response["Location"] == DELETE_URL
    assert User.objects.filter(email="carol@example.com").exists()
    assert not personal_team(carol).is_archived
    assert VIDEOS_IN_FLIGHT in client.get(DELETE_URL).text  # the words of a team's deletion
