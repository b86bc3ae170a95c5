from datetime import timedelta

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.core import mail
from django.db import IntegrityError
from django.urls import reverse
from django.utils import timezone

from apps.accounts import invitations
from apps.accounts.access import SESSION_KEY
from apps.accounts.models import (
    Invitation,
    Membership,
    Role,
    TeamEvent,
    TeamEventKind,
    User,
    hash_token,
)
from apps.accounts.services import archive_team, create_team
from tests.accounts.helpers import first_match, membership, team_state
from tests.factories import INVITATION_TOKEN, confirm_email, make_invitation

pytestmark = pytest.mark.django_db

TOKEN = INVITATION_TOKEN


def invite_url(acme) -> str:
    return reverse("accounts:invite", args=[acme.public_id])


def link_in(message) -> str:
    return first_match(r"https?://[^/\s]+(/teams/invite/[\w-]+/)", message.body)


def token_in(message) -> str:
    return link_in(message).rstrip("/").rsplit("/", 1)[1]


# --- Inviting ------------------------------------------------------------------------------


def test_an_admin_invites_someone_by_email_with_a_role(login, acme, bob):
    response = login(bob).post(invite_url(acme), {"email": "Dave@Example.com", "role": "admin"})

    assert response.status_code == 302
    invitation = Invitation.objects.get(team=acme)
    assert invitation.email == "dave@example.com"
    assert invitation.role == Role.ADMIN
    assert invitation.invited_by == bob
    assert invitation.expires_at - invitation.last_sent_at == timedelta(days=7)
    event = TeamEvent.objects.get(team=acme, kind=TeamEventKind.INVITED)
    assert (event.actor_email, event.subject_email) == ("bob@example.com", "dave@example.com")


def test_the_invitation_email_carries_a_single_use_link_whose_token_is_stored_hashed(
    login, acme, bob
):
    login(bob).post(invite_url(acme), {"email": "dave@example.com", "role": "member"})

    (message,) = mail.outbox
    assert message.to == ["dave@example.com"]
    assert "bob@example.com invited you to join Acme" in message.subject
    assert "as member" in message.body
    token = token_in(message)
    invitation = Invitation.objects.get(team=acme)
    assert invitation.token_hash == hash_token(token)
    assert token not in invitation.token_hash
    assert f"{invitation.expires_at:%Y}" in message.body


def test_links_in_emails_use_the_configured_address_not_the_requests_host(
    login, acme, bob, settings
):
    settings.SITE_URL = "https://unmark.example"

    login(bob).post(invite_url(acme), {"email": "dave@example.com", "role": "member"})

    assert "https://unmark.example/teams/invite/" in mail.outbox[0].body


def test_the_pending_invitation_is_listed_for_managers(login, acme, bob):
    client = login(bob)
    client.post(invite_url(acme), {"email": "dave@example.com", "role": "member"})

    page = client.get(reverse("accounts:members", args=[acme.public_id]))

    assert "Invitation sent to dave@example.com." in page.text
    assert "dave@example.com" in page.text.split("Pending invitations")[1]


def test_members_do_not_see_invitations(login, acme, bob, carol):
    make_invitation(acme, "dave@example.com", invited_by=bob)

    page = login(carol).get(reverse("accounts:members", args=[acme.public_id]))

    assert page.status_code == 200
    assert "dave@example.com" not in page.text
    assert "Invite people" not in page.text


def test_an_htmx_invite_answers_with_only_the_invitations_section(login, acme, bob):
    response = login(bob).post(
        invite_url(acme), {"email": "dave@example.com", "role": "member"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="invitations"')
    assert "Invitation sent to dave@example.com." in response.text
    assert Invitation.objects.filter(team=acme, email="dave@example.com").exists()


def test_an_invitation_can_not_make_an_owner(login, acme, alice):
    response = login(alice).post(invite_url(acme), {"email": "dave@example.com", "role": "owner"})

    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_a_malformed_address_is_pointed_out(login, acme, alice):
    response = login(alice).post(invite_url(acme), {"email": "not an address", "role": "member"})

    assert "Enter a valid email address." in response.text
    assert not Invitation.objects.exists()


def test_inviting_a_member_is_refused(login, acme, alice):
    response = login(alice).post(invite_url(acme), {"email": "CAROL@example.com", "role": "admin"})

    assert "carol@example.com is already a member of Acme." in response.text
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_an_address_has_one_pending_invitation_per_team(login, acme, alice, bob):
    make_invitation(acme, "dave@example.com", invited_by=bob)

    response = login(alice).post(invite_url(acme), {"email": "dave@example.com", "role": "admin"})

    assert "dave@example.com already has a pending invitation" in response.text
    assert Invitation.objects.filter(team=acme).count() == 1
    assert mail.outbox == []


def test_the_database_refuses_a_second_open_invitation_for_an_address(acme, bob):
    make_invitation(acme, "dave@example.com", invited_by=bob, token="one")

    with pytest.raises(IntegrityError):
        make_invitation(acme, "dave@example.com", invited_by=bob, token="two")


def test_the_same_address_may_be_invited_to_two_teams(acme, alice, bob):
    globex = create_team(name="Globex", owner=alice)
    make_invitation(globex, "dave@example.com", invited_by=alice)

    invitations.invite(
        team=acme, email="dave@example.com", role=Role.MEMBER, invited_by=bob, site_url=""
    )

    assert Invitation.objects.filter(email="dave@example.com").count() == 2


def test_inviting_again_after_expiry_renews_the_same_invitation(login, acme, alice, bob):
    old = make_invitation(acme, "dave@example.com", invited_by=bob)

    with time_machine.travel(timezone.now() + timedelta(days=8)):
        login(alice).post(invite_url(acme), {"email": "dave@example.com", "role": "admin"})
        renewed = Invitation.objects.get(team=acme)
        assert renewed.pk == old.pk
        assert renewed.role == Role.ADMIN
        assert renewed.invited_by == alice
        assert not renewed.is_expired
        assert renewed.token_hash == hash_token(token_in(mail.outbox[0]))


def test_a_team_sends_at_most_twenty_invitations_an_hour(login, acme, alice):
    for n in range(20):
        invitations.invite(
            team=acme,
            email=f"person{n}@example.org",
            role=Role.MEMBER,
            invited_by=alice,
            site_url="",
        )

    response = login(alice).post(
        invite_url(acme), {"email": "one-more@example.org", "role": "member"}
    )

    assert "Acme has sent 20 invitations within the hour" in response.text
    assert not Invitation.objects.filter(email="one-more@example.org").exists()
    assert len(mail.outbox) == 20


def test_the_team_allowance_comes_back_the_next_hour(acme, alice):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for n in range(20):
            invitations.invite(
                team=acme,
                email=f"p{n}@example.org",
                role=Role.MEMBER,
                invited_by=alice,
                site_url="",
            )
        traveller.shift(timedelta(hours=1))

        invitations.invite(
            team=acme, email="later@example.org", role=Role.MEMBER, invited_by=alice, site_url=""
        )

    assert Invitation.objects.filter(email="later@example.org").exists()


def test_an_address_gets_at_most_five_invitation_emails_a_day(login, acme, alice):
    invitation = invitations.invite(
        team=acme, email="dave@example.com", role=Role.MEMBER, invited_by=alice, site_url=""
    )
    for _ in range(4):
        invitations.resend_invitation(invitation=invitation, actor=alice, site_url="")
    before = team_state(acme)

    response = login(alice).post(
        reverse("accounts:resend_invitation", args=[acme.public_id, invitation.pk]), follow=True
    )

    assert "dave@example.com has been sent 5 invitations today" in response.text
    assert team_state(acme) == before
    assert len(mail.outbox) == 5


# --- Resending and revoking ----------------------------------------------------------------


def test_resending_sends_a_new_link_and_kills_the_old_one(login, client, acme, bob):
    invitation = make_invitation(acme, "dave@example.com", invited_by=bob)

    with time_machine.travel(timezone.now() + timedelta(days=3), tick=False):
        response = login(bob).post(
            reverse("accounts:resend_invitation", args=[acme.public_id, invitation.pk])
        )
        resent_at = timezone.now()

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.expires_at == resent_at + timedelta(days=7)
    assert invitation.last_sent_at == resent_at
    new_token = token_in(mail.outbox[0])
    assert invitation.token_hash == hash_token(new_token)
    assert client.get(reverse("accounts:invitation", args=[TOKEN])).status_code == 404
    assert client.get(reverse("accounts:invitation", args=[new_token])).status_code == 200
    assert TeamEvent.objects.filter(kind=TeamEventKind.INVITATION_RESENT).count() == 1


def test_revoking_withdraws_the_invitation(login, client, acme, bob):
    invitation = make_invitation(acme, "dave@example.com", invited_by=bob)

    login(bob).post(reverse("accounts:revoke_invitation", args=[acme.public_id, invitation.pk]))

    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert TeamEvent.objects.filter(kind=TeamEventKind.INVITATION_REVOKED).count() == 1
    page = client.get(reverse("accounts:invitation", args=[TOKEN]))
    assert "This invitation was withdrawn." in page.text


def test_a_revoked_invitation_can_not_be_resent(login, acme, bob):
    invitation = make_invitation(acme, "dave@example.com", invited_by=bob)
    invitation.revoked_at = timezone.now()
    invitation.save()
    before = team_state(acme)

    response = login(bob).post(
        reverse("accounts:resend_invitation", args=[acme.public_id, invitation.pk]), follow=True
    )

    assert "The invitation to dave@example.com is already revoked." in response.text
    assert team_state(acme) == before
    assert mail.outbox == []


# --- Accepting -----------------------------------------------------------------------------


@pytest.fixture
def charlie_invited(acme, bob, charlie):
    """Bob invited Charlie, whose address is confirmed, to Acme as a member."""
    confirm_email(charlie)
    return make_invitation(acme, "charlie@example.com", invited_by=bob)


def accept(client, token: str = TOKEN):
    return client.post(reverse("accounts:invitation", args=[token]))


def test_the_invited_person_joins_with_the_invited_role(login, acme, charlie, charlie_invited):
    client = login(charlie)

    response = accept(client)

    assert response.status_code == 302
    assert response["Location"] == acme.get_absolute_url()
    assert membership(acme, charlie).role == Role.MEMBER
    charlie_invited.refresh_from_db()
    assert charlie_invited.accepted_by == charlie
    assert charlie_invited.accepted_at is not None
    assert client.session[SESSION_KEY] == str(acme.public_id)
    assert "Welcome to Acme!" in client.get(acme.get_absolute_url()).text


def test_joining_is_recorded_and_the_inviter_is_told(login, acme, charlie, charlie_invited):
    accept(login(charlie))

    event = TeamEvent.objects.get(team=acme, kind=TeamEventKind.JOINED)
    assert event.actor == charlie
    assert event.detail == "As member, invited by bob@example.com"
    (message,) = mail.outbox
    assert message.to == ["bob@example.com"]
    assert "charlie@example.com joined Acme" in message.subject


def test_an_inviter_who_left_the_team_is_not_told(login, acme, bob, charlie, charlie_invited):
    membership(acme, bob).delete()

    accept(login(charlie))

    assert membership(acme, charlie)
    assert mail.outbox == []


def test_the_invitation_page_offers_to_join(login, charlie, charlie_invited):
    page = login(charlie).get(reverse("accounts:invitation", args=[TOKEN]))

    assert page.status_code == 200
    assert "bob@example.com invited <strong>charlie@example.com</strong>" in page.text
    assert "Join Acme</button>" in page.text


def test_a_confirmed_secondary_address_may_accept(login, acme, bob, charlie):
    confirm_email(charlie, "Charlie@Work.example")
    make_invitation(acme, "charlie@work.example", invited_by=bob)

    accept(login(charlie))

    assert membership(acme, charlie).role == Role.MEMBER


def test_a_signed_out_visitor_is_shown_the_invitation_and_how_to_sign_in(client, charlie_invited):
    page = client.get(reverse("accounts:invitation", args=[TOKEN]))

    assert page.status_code == 200
    assert "Join Acme" in page.text
    back_here = "?next=%2Fteams%2Finvite%2Fan-invitation-token%2F"
    signup = "?email=charlie%40example.com&amp;next=%2Fteams%2Finvite%2Fan-invitation-token%2F"
    assert f'href="{reverse("account_signup")}{signup}"' in page.text
    assert f'href="{reverse("account_login")}{back_here}"' in page.text


def test_a_signed_out_visitor_can_not_accept(client, acme, charlie_invited):
    before = team_state(acme)

    response = accept(client)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert team_state(acme) == before


def test_accepting_with_another_address_fails_clearly(login, acme, bob, charlie):
    confirm_email(charlie)
    make_invitation(acme, "dave@example.com", invited_by=bob)
    before = team_state(acme)

    response = accept(login(charlie))

    assert response.status_code == 403
    assert "This invitation is for another email address." in response.text
    assert "It was sent to dave@example.com, but you are signed in as charlie@example.com" in (
        response.text
    )
    assert team_state(acme) == before
    assert mail.outbox == []


def test_accepting_with_an_unconfirmed_address_fails_clearly(login, acme, bob, charlie):
    confirm_email(charlie, verified=False)
    make_invitation(acme, "charlie@example.com", invited_by=bob)
    before = team_state(acme)

    response = accept(login(charlie))

    assert response.status_code == 403
    assert "Confirm your email address before joining." in response.text
    assert "Send the confirmation link again" in response.text
    assert team_state(acme) == before


def test_an_account_made_without_sign_up_is_asked_to_confirm_its_address(login, acme, bob, charlie):
    """Like the local staff account: allauth has no record of the address yet."""
    make_invitation(acme, "charlie@example.com", invited_by=bob)
    before = team_state(acme)

    response = accept(login(charlie))

    assert response.status_code == 403
    assert "Confirm your email address before joining." in response.text
    assert team_state(acme) == before


@pytest.mark.parametrize("recorded", [True, False], ids=["unconfirmed", "unrecorded"])
def test_the_resend_confirmation_button_sends_a_confirmation_link(
    login, acme, bob, charlie, recorded
):
    if recorded:
        confirm_email(charlie, verified=False)
    make_invitation(acme, "charlie@example.com", invited_by=bob)
    client = login(charlie)
    page = client.get(reverse("accounts:invitation", args=[TOKEN]))
    form = first_match(r'(?s)(<form method="post" action="/accounts/email/">.*?</form>)', page.text)
    assert 'name="email" value="charlie@example.com"' in form

    client.post(reverse("account_email"), {"email": "charlie@example.com", "action_send": ""})

    (message,) = mail.outbox
    assert message.to == ["charlie@example.com"]
    assert "/accounts/confirm-email/" in message.body


def test_accepting_an_expired_invitation_fails_clearly(login, acme, charlie, charlie_invited):
    before = team_state(acme)

    with time_machine.travel(charlie_invited.expires_at + timedelta(seconds=1)):
        response = accept(login(charlie))

    assert response.status_code == 403
    assert "This invitation has expired." in response.text
    assert "Ask bob@example.com to resend it" in response.text
    assert team_state(acme) == before


def test_accepting_a_revoked_invitation_fails_clearly(login, acme, charlie, charlie_invited):
    charlie_invited.revoked_at = timezone.now()
    charlie_invited.save()
    before = team_state(acme)

    response = accept(login(charlie))

    assert response.status_code == 403
    assert "This invitation was withdrawn." in response.text
    assert team_state(acme) == before


def test_a_used_invitation_can_not_be_used_again(login, acme, charlie, charlie_invited):
    client = login(charlie)
    accept(client)
    before = team_state(acme)

    response = accept(client)

    assert response.status_code == 403
    assert "This invitation has already been used." in response.text
    assert team_state(acme) == before


def test_an_existing_member_is_told_so_and_nothing_changes(login, acme, bob, carol):
    confirm_email(carol)
    make_invitation(acme, "carol@example.com", invited_by=bob, role=Role.ADMIN)
    before = team_state(acme)

    response = accept(login(carol))

    assert response.status_code == 403
    assert "You are already a member of Acme." in response.text
    assert team_state(acme) == before
    assert membership(acme, carol).role == Role.MEMBER


def test_an_unknown_link_is_404_with_an_explanation(login, charlie):
    response = login(charlie).get(reverse("accounts:invitation", args=["no-such-token"]))

    assert response.status_code == 404
    assert "This invitation link is not valid." in response.text


def test_an_invitation_to_a_deleted_team_can_not_be_accepted(
    login, acme, alice, charlie, charlie_invited
):
    archive_team(team=acme, actor=membership(acme, alice))

    response = accept(login(charlie))

    assert response.status_code == 403
    assert not Membership.objects.filter(team=acme, user=charlie).exists()


def _open_invitation_to_dave(client, acme, bob) -> tuple[str, str]:
    """Bob invites dave@example.com; a signed-out browser opens the emailed link.

    Returns the invitation's path and the sign-up link the page offers.
    """
    invitations.invite(
        team=acme,
        email="dave@example.com",
        role=Role.ADMIN,
        invited_by=bob,
        site_url="http://testserver",
    )
    invite_path = reverse("accounts:invitation", args=[token_in(mail.outbox[0])])
    page = client.get(invite_path)
    signup_url = first_match(r'href="(/accounts/signup/\?[^"]+)"', page.text).replace("&amp;", "&")
    return invite_path, signup_url


def _sign_up(client, signup_url: str, email: str):
    return client.post(
        signup_url,
        {
            "email": email,
            "password1": "a-long-unusual-pass-1",
            "password2": "a-long-unusual-pass-1",
        },
    )


def test_the_sign_up_page_from_an_invitation_is_filled_in_with_the_invited_address(
    client, acme, bob
):
    _, signup_url = _open_invitation_to_dave(client, acme, bob)

    page = client.get(signup_url)

    assert 'value="dave@example.com"' in page.text
    assert "You are joining <strong>Acme</strong>" in page.text


def test_signing_up_through_the_link_with_the_invited_address_needs_no_confirmation(
    client, acme, bob
):
    invite_path, signup_url = _open_invitation_to_dave(client, acme, bob)
    emails_before = len(mail.outbox)

    signed_up = _sign_up(client, signup_url, "dave@example.com")

    assert signed_up["Location"] == invite_path
    dave = User.objects.get(email="dave@example.com")
    assert EmailAddress.objects.get(user=dave).verified
    assert len(mail.outbox) == emails_before  # no confirmation email
    joined = accept(client, token_in(mail.outbox[0]))
    assert joined.status_code == 302
    assert membership(acme, dave).role == Role.ADMIN


def test_signing_up_through_the_link_with_another_address_still_needs_confirmation(
    client, acme, bob
):
    invite_path, signup_url = _open_invitation_to_dave(client, acme, bob)

    _sign_up(client, signup_url, "someone-else@example.com")

    other = User.objects.get(email="someone-else@example.com")
    assert not EmailAddress.objects.get(user=other).verified
    assert "/accounts/confirm-email/" in mail.outbox[-1].body
    assert mail.outbox[-1].to == ["someone-else@example.com"]
    refused = client.get(invite_path)
    assert "This invitation is for another email address." in refused.text


def test_signing_up_with_the_invited_address_without_opening_the_link_needs_confirmation(
    client, acme, bob
):
    invitations.invite(
        team=acme, email="dave@example.com", role=Role.MEMBER, invited_by=bob,
        site_url="http://testserver",
    )  # fmt: skip

    _sign_up(client, reverse("account_signup"), "dave@example.com")

    assert not EmailAddress.objects.get(email="dave@example.com").verified


def test_an_invitation_withdrawn_after_opening_no_longer_proves_the_address(client, acme, bob):
    _, signup_url = _open_invitation_to_dave(client, acme, bob)
    Invitation.objects.update(revoked_at=timezone.now())

    _sign_up(client, signup_url, "dave@example.com")

    assert not EmailAddress.objects.get(email="dave@example.com").verified
