import pytest
from django.urls import reverse

from apps.accounts.models import User
from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry, Wallet
from apps.billing.welcome import onboard_new_user

pytestmark = pytest.mark.django_db


def test_signing_up_gives_the_personal_team_30_credits(client):
    client.post(
        reverse("account_signup"),
        {
            "email": "dana@example.com",
            "password1": "a-long-unusual-pass-1",
            "password2": "a-long-unusual-pass-1",
        },
    )

    dana = User.objects.get(email="dana@example.com")
    wallet = Wallet.objects.get(team__memberships__user=dana)
    assert wallet.team.is_personal
    assert (wallet.balance, wallet.held) == (30, 0)
    entry = LedgerEntry.objects.get(team=wallet.team)
    assert (entry.kind, entry.key, entry.memo) == (
        EntryKind.GRANT,
        f"signup:{dana.pk}",
        "Welcome credits",
    )


def test_welcome_credits_are_given_once(alice):
    onboard_new_user(user=alice)
    onboard_new_user(user=alice)

    assert LedgerEntry.objects.filter(key=f"signup:{alice.pk}").count() == 1
    assert Wallet.objects.get(team__memberships__user=alice).balance == 30


def test_the_amount_of_welcome_credits_is_a_setting(settings):
    settings.SIGNUP_CREDITS = 0
    dana = User.objects.create_user("dana@example.com")

    team = onboard_new_user(user=dana)

    assert Wallet.objects.get(team=team).balance == 0


def test_a_team_made_later_starts_with_no_credits(alice, acme):
    assert ledger.available_credits(acme) == 0
    assert not LedgerEntry.objects.filter(team=acme).exists()
