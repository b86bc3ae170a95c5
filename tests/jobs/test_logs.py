"""Logs: one line per state change, and never a secret."""

import logging

import pytest

from apps.accounts.models import Membership
from apps.jobs import services

pytestmark = pytest.mark.django_db(transaction=True)

LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"


def test_no_secret_reaches_the_logs(sim_stack, alice, drive, caplog, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_never_log_me_123"
    caplog.set_level(logging.DEBUG)
    membership = Membership.objects.select_related("team", "user").get(
        user=alice, team__is_personal=True
    )
    [job] = services.submit_links(membership=membership, links=[LINK])

    drive([job])

    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "job state changed" in text  # the logs did capture the run
    for secret in (
        settings.KIE_API_KEY,
        settings.SECRET_KEY,
        settings.STRIPE_SECRET_KEY,
        job.callback_token,
    ):
        assert secret not in text
