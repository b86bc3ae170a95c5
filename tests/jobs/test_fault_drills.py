"""Fault drills: Kie misbehaves, results go bad, the database goes away for a moment.

After every drill: no job is left in flight, every job is settled exactly once, the ledger
reconciles, and the job's page tells the person plainly what happened. (A worker killed in the
middle of a download is drilled in test_worker_process.py, with real processes.)
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.billing.models import LedgerEntry
from apps.jobs import services
from apps.jobs.models import Job, JobState
from tests.jobs.conftest import SORA_LINK

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
    "maintenance (455)": {"forced_code": 455, "forced_msg": "Service under maintenance"},
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
    [job] = services.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    run_tasks()

    job.refresh_from_db()
    assert job.state == JobState.QUEUED  # waiting to try again, not failed
    last_step = job.events.last()
    assert last_step is not None
    assert "trying again" in last_step.detail
    assert (
        "Queued"
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
    [job] = services.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.attempts == 5
    page = assert_settled_cleanly(job, login(alice))
    assert "Kie was too busy to accept this video after several tries" in page


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"paused": True}, "Kie has paused Sora watermark removal"),
        ({"credits": 0}, "unavailable on our side"),
        ({"forced_code": 401, "forced_msg": "Unauthorized"}, "unavailable on our side"),
        ({"failure_rate": 1.0}, "Kie could not remove the watermark"),
        ({"result_fault": "missing"}, "The result link no longer exists"),
        ({"result_fault": "html"}, "served text/html, not a video"),
    ],
    ids=[
        "paused",
        "out of Kie credits",
        "bad key",
        "generation failed",
        "404 result",
        "HTML result",
    ],
)
def test_a_lasting_fault_fails_the_job_clearly_and_refunds(
    config, says, sim_stack, alice_membership, drive, login, alice
):
    sim_stack.simulator.configure(**config)
    [job] = services.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    page = assert_settled_cleanly(job, login(alice))
    assert says in page
    assert "Nothing was charged" in page
    assert "Try again" in page


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
    [job] = services.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()
    job.refresh_from_db()
    sim_stack.wait_until_done(job.task_id)
    kie = Client(raise_request_exception=False)

    with database_unavailable():
        response = kie.post(
            reverse("jobs:kie_callback", args=[job.callback_token]),
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
