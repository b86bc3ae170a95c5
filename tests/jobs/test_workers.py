"""What the web knows of the worker clusters (their heartbeats), and submissions refused when
they could not be sent before the give-up deadline."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from apps import taskqueue
from apps.accounts.models import User
from apps.billing.models import LedgerEntry
from apps.jobs import submission
from apps.jobs.models import Job
from tests.stack import SORA_LINK

pytestmark = pytest.mark.django_db

STARTED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_healthz_shows_each_cluster_and_workers_judges_them(client):
    assert client.get("/healthz/workers").status_code == 503  # none running
    taskqueue._beat("a", "alpha-bravo", STARTED, database=True)
    taskqueue._beat("b", "charlie-delta", STARTED + timedelta(seconds=1), database=False)

    body = client.get("/healthz").json()

    assert client.get("/healthz").status_code == 200  # worker trouble never fails the web
    assert [(c["name"], c["database"]) for c in body["workers"]["clusters"]] == [
        ("alpha-bravo", "ok"),
        ("charlie-delta", "unreachable"),
    ]
    assert body["workers"]["clusters"][0]["last_heartbeat_s"] < 5
    assert client.get("/healthz/workers").status_code == 503
    taskqueue._beat("b", "charlie-delta", STARTED, database=True)
    assert client.get("/healthz/workers").json()["status"] == "ok"


def test_the_admin_job_list_shows_the_clusters(client):
    client.force_login(User.objects.create_superuser("ops@unmark.example", "a-long-pass-1"))
    taskqueue._beat("b", "charlie-delta", STARTED, database=False)

    page = client.get(reverse("admin:jobs_job_changelist")).text

    assert "charlie-delta" in page
    assert "cannot reach the database" in page


def test_a_submission_that_could_not_be_sent_in_time_is_refused_and_holds_nothing(
    alice_membership, settings
):
    # One create per 10 s: 840 s of waiting room before the 15-minute give-up is 82 videos.
    settings.KIE_CREATE_LIMIT = 1
    submission.submit_jobs(membership=alice_membership, links=[SORA_LINK] * 2)
    Job.objects.bulk_create(
        Job(team=alice_membership.team, provider="kie", credits=10, source_url=SORA_LINK)
        for _ in range(78)
    )
    held_before = LedgerEntry.objects.count()

    with pytest.raises(submission.ProviderBusy) as refused:
        submission.submit_jobs(membership=alice_membership, links=[SORA_LINK] * 3)

    assert "80 videos are waiting" in str(refused.value)
    assert "your 3 videos would wait about 15 minutes" in str(refused.value)
    assert "Nothing was charged" in str(refused.value)
    assert Job.objects.count() == 80
    assert LedgerEntry.objects.count() == held_before
    [accepted] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    assert accepted.pk
