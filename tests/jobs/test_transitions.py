"""`Job.move` is the one way a job changes state, and `MOVES` the one table of what is allowed."""

import logging

import pytest
from django.db import transaction

from apps.billing.models import LedgerEntry
from apps.jobs import lifecycle, submission
from apps.jobs.models import FINAL_STATES, MOVES, ForbiddenMove, Job, JobEvent, JobState
from tests.factories import make_job
from tests.stack import SORA_LINK

pytestmark = pytest.mark.django_db


def test_the_table_names_every_state_and_final_states_lead_nowhere_but_expiry():
    assert set(MOVES) == set(JobState)
    for state in FINAL_STATES:
        assert MOVES[state] <= {JobState.EXPIRED}
    # Back in line only from a state a provider holds it in (an SWC pool re-sends lost tasks).
    back_in_line = {state for state in JobState if JobState.QUEUED in MOVES[state]}
    assert back_in_line == {JobState.SUBMITTED, JobState.PROCESSING, JobState.DOWNLOADING}


def test_a_forbidden_move_raises_under_tests_and_changes_nothing(alice_membership):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    with pytest.raises(ForbiddenMove):
        job.move(JobState.SUCCEEDED, detail="skipping every step")

    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert JobEvent.objects.filter(job=job).count() == 1


def test_in_production_too_a_forbidden_move_raises_and_its_transaction_writes_nothing(
    alice_membership, settings
):
    settings.TESTING = settings.DEBUG = False
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    def touch_then_skip_ahead() -> None:
        with transaction.atomic():
            job.touch(checks=5)
            job.move(JobState.DOWNLOADING)

    with pytest.raises(ForbiddenMove):
        touch_then_skip_ahead()

    job.refresh_from_db()
    assert (job.state, job.checks) == (JobState.QUEUED, 0)
    assert JobEvent.objects.filter(job=job).count() == 1


def test_ending_a_job_settles_it_once_whoever_ends_it(alice_membership):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    stale = Job.objects.get(pk=job.pk)

    assert lifecycle.cancel_job(job) is True
    assert (
        lifecycle.fail_job(stale, code="staff", message="Stopped.") is False
    )  # already ended elsewhere

    kinds = sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["hold", "release"]
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELED


def test_a_job_without_a_hold_ends_with_an_alert_instead_of_being_retried_for_ever(
    alice_membership, caplog
):
    job = make_job(alice_membership.team, state=JobState.SUBMITTED)  # no credits held for it

    with caplog.at_level(logging.ERROR, logger="unmark.jobs"):
        assert lifecycle.fail_job(job, code="timeout", message="Too late.") is True

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert not Job.objects.filter(pk=job.pk).in_flight().exists()  # nothing left to sweep
    assert not LedgerEntry.objects.filter(job=job).exists()
    [alert] = [r for r in caplog.records if r.getMessage() == "job ended without a credit hold"]
    assert alert.job == job.public_id


def test_in_production_a_forbidden_ending_raises_and_leaves_no_trace_of_it(
    alice_membership, settings
):
    settings.TESTING = settings.DEBUG = False
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    assert lifecycle.cancel_job(job) is True
    entries = LedgerEntry.objects.count()
    events = JobEvent.objects.filter(job=job).count()

    with pytest.raises(ForbiddenMove), transaction.atomic():
        lifecycle.fail_job(job, code="staff", message="Stopped.")  # canceled → failed

    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    assert LedgerEntry.objects.count() == entries
    assert JobEvent.objects.filter(job=job).count() == events


def test_a_late_answer_to_an_earlier_send_never_replaces_the_task_followed(alice_membership):
    job = make_job(alice_membership.team, state=JobState.SUBMITTED)
    Job.objects.filter(pk=job.pk).update(attempts=1, task_id="")
    first_send = Job.objects.get(pk=job.pk)  # as the worker of the first send holds it
    # Its answer was slow: the lease ran out and the job was sent again, unanswered yet.
    Job.objects.filter(pk=job.pk).update(attempts=2)
    second_send = Job.objects.get(pk=job.pk)

    assert not first_send.record_task("task-of-the-first-send")
    assert second_send.record_task("task-of-the-second-send")
    # A callback adopting a task once one is recorded changes nothing either.
    assert not Job.objects.get(pk=job.pk).record_task("task-named-by-a-callback")

    job.refresh_from_db()
    assert (job.task_id, job.attempts) == ("task-of-the-second-send", 2)
