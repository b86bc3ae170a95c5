"""Removing a member, revoking an invitation, leaving and deleting a team ask first: the link
opens a confirmation (a page without JavaScript, a dialog with it) and only its POST acts."""

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from apps.accounts.models import Invitation, Membership, Team
from apps.billing import ledger
from tests.accounts.helpers import membership, team_state
from tests.factories import make_invitation

pytestmark = pytest.mark.django_db


def test_opening_remove_asks_first_and_changes_nothing(login, acme, bob, carol):
    url = reverse("accounts:remove_member", args=[acme.public_id, membership(acme, carol).pk])
    before = team_state(acme)

    page = login(bob).get(url)

    assert page.status_code == 200
    assert "Remove carol@example.com from Acme?" in page.text
    assert f'action="{url}"' in page.text
    assert team_state(acme) == before
    assert mail.outbox == []


def test_the_dialog_version_is_only_the_question(login, acme, bob, carol):
    url = reverse("accounts:remove_member", args=[acme.public_id, membership(acme, carol).pk])

    dialog = login(bob).get(url, headers={"X-Confirm-Dialog": "1"})

    assert "Remove carol@example.com from Acme?" in dialog.text
    assert "<html" not in dialog.text


def test_confirming_removes_the_member_and_emails_them(
    login, acme, bob, carol, django_capture_on_commit_callbacks
):
    url = reverse("accounts:remove_member", args=[acme.public_id, membership(acme, carol).pk])

    with django_capture_on_commit_callbacks(execute=True):
        response = login(bob).post(url)

    assert response.status_code == 302
    assert not Membership.objects.filter(team=acme, user=carol).exists()
    (message,) = mail.outbox
    assert message.to == ["carol@example.com"]
    assert "You are no longer in Acme" in message.subject
    assert "bob@example.com removed you from the team" in message.body
    assert isinstance(message, EmailMultiAlternatives)
    assert message.alternatives[0][1] == "text/html"


def test_revoking_an_invitation_asks_first(login, acme, bob):
    invitation = make_invitation(acme, "dave@example.com", invited_by=bob)
    url = reverse("accounts:revoke_invitation", args=[acme.public_id, invitation.pk])
    client = login(bob)

    page = client.get(url)
    assert "Revoke the invitation to dave@example.com?" in page.text
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is None

    client.post(url)
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None


def test_leaving_asks_first(login, acme, carol):
    url = reverse("accounts:leave_team", args=[acme.public_id])
    client = login(carol)

    assert "Leave Acme?" in client.get(url).text
    assert Membership.objects.filter(team=acme, user=carol).exists()

    client.post(url)
    assert not Membership.objects.filter(team=acme, user=carol).exists()


def test_deleting_says_what_happens_to_the_unused_credits_first(login, acme, alice):
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Launch promo")
    url = reverse("accounts:delete_team", args=[acme.public_id])

    page = login(alice).get(url)

    text = " ".join(page.text.split())
    assert "Its 1,000 unused credits (enough for 100 videos) are lost with it" in text
    assert Team.objects.get(pk=acme.pk).archived_at is None


def test_members_cannot_open_the_remove_question(login, acme, carol, bob):
    url = reverse("accounts:remove_member", args=[acme.public_id, membership(acme, bob).pk])

    assert login(carol).get(url).status_code == 403


def test_outsiders_get_404_for_the_questions(login, acme, charlie, carol):
    url = reverse("accounts:remove_member", args=[acme.public_id, membership(acme, carol).pk])

    assert login(charlie).get(url).status_code == 404
