"""Fault drills: Kie misbehaves, results go bad, the database goes away for a moment.

After every drill: no job is left in flight, every job is settled exactly once, the ledger
reconciles, and the job's page tells the person plainly what happened. (A worker killed in the
middle of a download is drilled in test_worker_process.py, with real processes.)
"""

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.billing.models import LedgerEntry
from apps.jobs import dispatcher, submission
from apps.jobs.models import Job, JobState
from apps.removal.models import ProviderAlert
from tests.stack import SORA_LINK

pytestmark = pytest.mark.django_db(transaction=True)


def assert_settled_cleanly(job: Job, client: Client) -> str:
    """The checks every drill ends with; returns the job page for drill-specific wording."""
    job.refresh_from_db()
    assert not job.is_in_flight
    kinds = sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == (
        ["capture", "hold"] if job.state == JobState.SUCCEEDED else ["hold", "release"]
    )
    call_command("reconcile")  # raises on any drift
    page = client.get(reverse("jobs:detail", args=[job.team.public_id, job.public_id])).text
    assert job.get_state_display() in page
    return page


TRANSIENT_FAULTS: dict[str, dict[str, object]] = {
    "rate limited (429)": {"forced_code": 429, "forced_msg": "Too many requests"},
    "server errors (500)": {"forced_code": 500, "forced_msg": "Internal server error"},
    "malformed JSON": {"api_fault": "malformed"},
    "an HTML error page": {"api_fault": "html"},
    "answers slower than our timeout": {"api_delay_seconds": 1.5},
}


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=list(TRANSIENT_FAULTS))
def test_a_passing_fault_delays_the_job_and_then_it_finishes(
    fault, sim_stack, alice_membership, run_tasks, drive, login, alice, settings
):
    settings.KIE_TIMEOUT_SECONDS = 1
    sim_stack.simulator.configure(**TRANSIENT_FAULTS[fault])
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    run_tasks()

    job.refresh_from_db()
    assert job.state == JobState.QUEUED  # waiting to try again, not failed
    last_step = job.events.last()
    assert last_step is not None
    assert "trying again" in last_step.detail
    assert (
        "Waiting"
        in login(alice).get(reverse("jobs:detail", args=[job.team.public_id, job.public_id])).text
    )

    sim_stack.simulator.configure(forced_code=0, forced_msg="", api_fault="", api_delay_seconds=0.0)
    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert_settled_cleanly(job, login(alice))


def test_kie_failing_for_good_gives_up_after_a_few_tries_and_refunds(
    sim_stack, alice_membership, drive, login, alice
):
    sim_stack.simulator.configure(forced_code=500, forced_msg="Internal server error")
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.attempts == 5
    page = assert_settled_cleanly(job, login(alice))
    assert "Kie was too busy to accept this video after several tries" in page


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"failure_rate": 1.0}, "Kie could not remove the watermark"),
        ({"result_fault": "missing"}, "The result link no longer exists"),
        ({"result_fault": "html"}, "served text/html, not a video"),
    ],
    ids=[
        "generation failed",
        "404 result",
        "HTML result",
    ],
)
def test_a_lasting_fault_fails_the_job_clearly_and_refunds(
    config, says, sim_stack, alice_membership, drive, login, alice
):
    sim_stack.simulator.configure(**config)
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    page = assert_settled_cleanly(job, login(alice))
    assert says in page
    assert "Nothing was charged" in page
    assert "Try again" in page


def creates_seen(sim_stack) -> int:
    return sum(
        1 for r in sim_stack.simulator.seen()["requests"] if r["path"].endswith("/createTask")
    )


def test_a_maintenance_window_holds_jobs_without_using_attempts_until_kie_is_back(
    sim_stack, alice_membership, run_tasks, drive, login, alice, settings
):
    settings.PROVIDER_PROBE_SECONDS = 1
    sim_stack.simulator.configure(forced_code=455, forced_msg="Service under maintenance")
    [first] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()

    first.refresh_from_db()
    assert (first.state, first.attempts) == (JobState.QUEUED, 0)
    assert (
        "waits and goes out when it is back"
        in first.events.get(to_state=JobState.QUEUED, from_state=JobState.SUBMITTED).detail
    )
    alert = ProviderAlert.objects.get(resolved_at=None)
    assert (alert.provider, alert.kind) == ("kie", "maintenance")
    # While it lasts, nothing new goes out: not the next video, not this one again.
    [second] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()
    dispatcher.poll_due_jobs(run_seconds=0)
    run_tasks()
    assert creates_seen(sim_stack) == 1
    page = login(alice).get(reverse("jobs:dashboard", args=[alice_membership.team.public_id])).text
    assert "Kie is under maintenance" in page
    assert "Your videos wait and go out when it is back" in page

    sim_stack.simulator.configure(forced_code=0, forced_msg="")
    time.sleep(1.1)
    drive([first, second])  # the poller's next probe finds Kie back and sends both

    for job in (first, second):
        job.refresh_from_db()
        assert (job.state, job.attempts) == (JobState.SUCCEEDED, 1)
        assert_settled_cleanly(job, login(alice))
    assert creates_seen(sim_stack) == 3
    assert not ProviderAlert.objects.filter(resolved_at=None).exists()


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"paused": True}, "paused"),
        ({"credits": 0}, "out_of_credits"),
        ({"forced_code": 401, "forced_msg": "Unauthorized"}, "unauthorized"),
    ],
    ids=["paused", "out of Kie credits", "bad key"],
)
def test_jobs_wait_for_an_unavailable_kie_and_are_refunded_at_their_deadline(
    config, kind, sim_stack, alice_membership, run_tasks, drive, login, alice, settings
):
    sim_stack.simulator.configure(**config)
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
    assert ProviderAlert.objects.get(resolved_at=None).kind == kind

    Job.objects.filter(pk=job.pk).update(
        created_at=job.created_at - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + 1)
    )
    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    page = assert_settled_cleanly(job, login(alice))
    assert "Kie could not take this video within 15 minutes" in page
    assert "Nothing was charged" in page


@contextmanager
def database_unavailable() -> Iterator[None]:
    """Another session holds the jobs table; this process's queries fail fast meanwhile."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        sqlite_blocker = sqlite3.connect(settings_dict["NAME"], timeout=0)
        sqlite_blocker.execute("BEGIN EXCLUSIVE")
        connection.close()
        options = settings_dict["OPTIONS"]
        saved_timeout = options["timeout"]
        options["timeout"] = 0.2
        try:
            yield
        finally:
            sqlite_blocker.rollback()
            sqlite_blocker.close()
            options["timeout"] = saved_timeout
            connection.close()
    else:
        blocker = psycopg.connect(
            dbname=settings_dict["NAME"],
            user=settings_dict["USER"],
            host=settings_dict["HOST"] or "127.0.0.1",
            port=settings_dict["PORT"] or 5432,
            password=settings_dict["PASSWORD"] or None,
        )
        blocker.execute("LOCK TABLE jobs_job IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            yield
        finally:
            blocker.rollback()
            blocker.close()
            connection.close()


def test_a_callback_during_a_database_outage_is_lost_and_the_poller_finishes_the_job(
    sim_stack, alice_membership, run_tasks, drive, login, alice
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()
    job.refresh_from_db()
    sim_stack.wait_until_done(job.task_id)
    kie = Client(raise_request_exception=False)

    with database_unavailable():
        response = kie.post(
            reverse("jobs:callback", args=["kie", job.callback_token]),
            sim_stack.callback_body(job.task_id),
            content_type="application/json",
        )

    assert response.status_code == 500  # Kie sees a failure; nothing was half-done
    job.refresh_from_db()
    assert job.state == JobState.SUBMITTED
    drive([job])
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert_settled_cleanly(job, login(alice))
