"""The low-balance email: owners and admins hear once each time available credits fall below
the threshold they chose, and again only after credits came back above it."""

import pytest
from django.core import mail
from django.urls import reverse

from apps.accounts.models import Team, User
from apps.billing import ledger, low_balance
from apps.billing.services import grant_by_staff
from tests.billing.conftest import make_job

pytestmark = pytest.mark.django_db


def set_threshold(login, user, team, videos: str):
    return login(user).post(
        reverse("accounts:set_low_balance", args=[team.public_id]),
        {"low_balance_threshold": videos},
    )


def test_owners_and_admins_are_emailed_once_when_credits_fall_below_the_threshold(
    login, alice, acme
):
    ledger.grant(team=acme, credits=120, key="promo:acme", memo="Launch promo")
    assert set_threshold(login, alice, acme, "10").status_code == 302  # 10 videos = 100 credits
    acme.refresh_from_db()
    assert acme.low_balance_threshold == 100

    assert low_balance.check(team=acme) is False  # 120 available: above it
    ledger.hold_for_jobs(team=acme, jobs=[make_job(acme), make_job(acme), make_job(acme)])
    assert low_balance.check(team=acme) is True  # 90 available
    assert low_balance.check(team=acme) is False  # already told

    (message,) = mail.outbox
    assert sorted(message.to) == ["alice@example.com", "bob@example.com"]  # not carol, a member
    assert "Acme is running low on credits" in message.subject
    assert "Acme has 90 credits available" in message.body
    assert "enough for 9 more videos" in message.body
    assert reverse("billing:overview", args=[acme.public_id]) in message.body


def test_credits_back_above_the_threshold_re_arm_the_email(
    acme, django_capture_on_commit_callbacks
):
    staff = User.objects.create_user("clerk@unmark.example", is_staff=True)
    ledger.grant(team=acme, credits=100, key="promo:acme", memo="Launch promo")
    Team.objects.filter(pk=acme.pk).update(low_balance_threshold=100)
    ledger.hold_for_jobs(team=acme, jobs=[make_job(acme)])
    assert low_balance.check(team=acme) is True

    with django_capture_on_commit_callbacks(execute=True):
        grant_by_staff(team=acme, credits=500, key="grant:1", staff=staff, reason="Thanks")
    acme.refresh_from_db()
    assert acme.low_balance_alerted is False
    ledger.hold_for_jobs(team=acme, jobs=[make_job(acme) for _ in range(51)])
    assert low_balance.check(team=acme) is True

    assert len(mail.outbox) == 2


def test_without_a_threshold_nobody_is_emailed(acme):
    assert ledger.available_credits(acme) < 100
    assert low_balance.check(team=acme) is False
    assert mail.outbox == []


def test_members_cannot_set_the_threshold(login, carol, acme):
    response = set_threshold(login, carol, acme, "5")

    assert response.status_code == 403
    acme.refresh_from_db()
    assert acme.low_balance_threshold is None
