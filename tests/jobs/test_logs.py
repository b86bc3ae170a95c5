"""Logs: one line per state change, and never a secret."""

import logging

import pytest

from apps.accounts.models import Membership
from apps.jobs import submission

pytestmark = pytest.mark.django_db(transaction=True)

LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"


def test_no_secret_reaches_the_logs(sim_stack, alice, drive, caplog, settings):
    # Callbacks on (to a closed port), so the secret callback token travels in the requests.
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    caplog.set_level(logging.DEBUG)
    membership = Membership.objects.select_related("team", "user").get(
        user=alice, team__is_personal=True
    )
    [job] = submission.submit_jobs(membership=membership, links=[LINK])

    drive([job])

    job.refresh_from_db()
    assert job.callback_token in str(job.callback_url)
    ours = [r for r in caplog.records if not r.name.startswith("apps.simulators")]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "job state changed" in text  # the logs did capture the run
    assert "kie call" in text
    for secret in (settings.KIE_API_KEY, settings.SECRET_KEY, job.callback_token):
        assert secret not in text
