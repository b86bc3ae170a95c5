"""Ownership passes in two steps: an owner offers, the other member accepts."""

import re

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse

from apps.accounts import services
from apps.accounts.models import Membership, OwnershipOffer, Role, TeamEvent, TeamEventKind
from tests.accounts.helpers import first_match, membership, team_state

pytestmark = pytest.mark.django_db


def offer_to(client, team, member):
    return client.post(
        reverse("accounts:offer_ownership", args=[team.public_id, member.pk]), follow=True
    )


@pytest.fixture
def offered_to_carol(login, acme, alice, carol):
    offer_to(login(alice), acme, membership(acme, carol))
    return OwnershipOffer.objects.get(team=acme)


def test_offering_ownership_changes_no_role_yet_and_emails_the_member(login, acme, alice, carol):
    before = dict(Membership.objects.filter(team=acme).values_list("user__email", "role"))

    response = offer_to(login(alice), acme, membership(acme, carol))

    assert "Offered ownership to carol@example.com." in response.text
    assert dict(Membership.objects.filter(team=acme).values_list("user__email", "role")) == before
    offer = OwnershipOffer.objects.get(team=acme)
    assert (offer.offered_by.user, offer.offered_to.user) == (alice, carol)
    (message,) = mail.outbox
    assert message.to == ["carol@example.com"]
    assert "alice@example.com offered you ownership of Acme" in message.subject
    link = first_match(re.escape(settings.SITE_URL) + r"(\S+)", message.body)
    assert link == reverse("accounts:ownership_offer", args=[acme.public_id])
    assert TeamEvent.objects.filter(kind=TeamEventKind.OWNERSHIP_OFFERED).count() == 1


def test_the_offer_page_explains_and_offers_both_answers(login, acme, carol, offered_to_carol):
    page = login(carol).get(reverse("accounts:ownership_offer", args=[acme.public_id]))

    assert "alice@example.com</strong> offered you ownership of Acme" in page.text
    assert "Accept ownership" in page.text
    assert "Decline" in page.text


def test_accepting_makes_the_member_owner_and_the_offerer_admin(
    login, acme, alice, carol, offered_to_carol
):
    response = login(carol).post(
        reverse("accounts:accept_ownership", args=[acme.public_id]), follow=True
    )

    assert "You are now an owner of Acme." in response.text
    assert membership(acme, carol).role == Role.OWNER
    assert membership(acme, alice).role == Role.ADMIN
    assert not OwnershipOffer.objects.exists()
    event = TeamEvent.objects.get(kind=TeamEventKind.OWNERSHIP_TRANSFERRED)
    assert (event.actor_email, event.subject_email) == ("carol@example.com", "alice@example.com")


def test_declining_changes_nothing_but_the_offer(login, acme, carol, offered_to_carol):
    login(carol).post(reverse("accounts:close_ownership_offer", args=[acme.public_id]))

    assert not OwnershipOffer.objects.exists()
    assert membership(acme, carol).role == Role.MEMBER
    event = TeamEvent.objects.get(kind=TeamEventKind.OWNERSHIP_OFFER_CLOSED)
    assert (event.actor_email, event.detail) == ("carol@example.com", "Declined")


def test_the_owner_cancels_the_offer(login, acme, alice, offered_to_carol):
    response = login(alice).post(
        reverse("accounts:close_ownership_offer", args=[acme.public_id]), follow=True
    )

    assert "The offer is canceled." in response.text
    assert not OwnershipOffer.objects.exists()
    assert TeamEvent.objects.get(kind=TeamEventKind.OWNERSHIP_OFFER_CLOSED).detail == "Canceled"


def test_a_team_has_one_open_offer_at_a_time(login, acme, alice, bob, offered_to_carol):
    before = team_state(acme)

    response = offer_to(login(alice), acme, membership(acme, bob))

    assert "Ownership is already offered to carol@example.com. Cancel that offer first." in (
        response.text
    )
    assert team_state(acme) == before


def test_ownership_is_not_offered_to_an_owner(acme, alice, bob):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)

    with pytest.raises(services.ActionRefused, match="is already an owner"):
        services.offer_ownership(
            actor=membership(acme, alice), target=membership(acme, bob), site_url=""
        )


def test_the_members_page_shows_the_open_offer_to_both_sides(
    login, acme, alice, carol, offered_to_carol
):
    for_alice = login(alice).get(reverse("accounts:members", args=[acme.public_id]))
    for_carol = login(carol).get(reverse("accounts:members", args=[acme.public_id]))

    assert "Ownership offered to <strong>carol@example.com</strong>" in for_alice.text
    assert "Cancel the offer" in for_alice.text
    assert "alice@example.com offered you ownership of Acme." in for_carol.text


def test_the_offer_goes_when_its_recipient_leaves(acme, carol, offered_to_carol):
    services.leave_team(membership=membership(acme, carol))

    assert not OwnershipOffer.objects.exists()


def test_the_offer_goes_when_its_owner_is_demoted(acme, alice, bob, offered_to_carol):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)

    services.change_role(
        actor=membership(acme, bob), target=membership(acme, alice), role=Role.ADMIN
    )

    assert not OwnershipOffer.objects.exists()


def test_an_offer_whose_owner_lost_the_role_outside_the_app_can_not_be_accepted(
    acme, alice, bob, carol, offered_to_carol
):
    Membership.objects.filter(team=acme, user=bob).update(role=Role.OWNER)
    Membership.objects.filter(team=acme, user=alice).update(role=Role.MEMBER)  # staff, in admin

    with pytest.raises(services.ActionRefused, match="no longer valid"):
        services.accept_ownership(membership=membership(acme, carol))

    assert membership(acme, carol).role == Role.MEMBER
    assert membership(acme, alice).role == Role.MEMBER
