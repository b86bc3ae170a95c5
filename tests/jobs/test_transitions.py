"""`Job.move` is the one way a job changes state, and `MOVES` the one table of what is allowed."""

import pytest

from apps.billing.models import LedgerEntry
from apps.jobs import services
from apps.jobs.models import FINAL_STATES, MOVES, ForbiddenMove, Job, JobEvent, JobState
from tests.jobs.conftest import SORA_LINK

pytestmark = pytest.mark.django_db


def test_the_table_names_every_state_and_final_states_lead_nowhere_but_expiry():
    assert set(MOVES) == set(JobState)
    for state in FINAL_STATES:
        assert MOVES[state] <= {JobState.EXPIRED}
    # Back in line only from a state a provider holds it in (an SWC pool re-sends lost tasks).
    back_in_line = {state for state in JobState if JobState.QUEUED in MOVES[state]}
    assert back_in_line == {JobState.SUBMITTED, JobState.PROCESSING, JobState.DOWNLOADING}


def test_a_forbidden_move_raises_under_tests_and_changes_nothing(alice_membership):
    [job] = services.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    with pytest.raises(ForbiddenMove):
        job.move(JobState.SUCCEEDED, detail="skipping every step")

    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert JobEvent.objects.filter(job=job).count() == 1


def test_in_production_a_forbidden_move_is_logged_and_not_applied(
    alice_membership, settings, caplog
):
    settings.TESTING = settings.DEBUG = False
    [job] = services.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    assert job.move(JobState.DOWNLOADING) is False

    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert "forbidden job move" in caplog.text


def test_ending_a_job_settles_it_once_whoever_ends_it(alice_membership):
    [job] = services.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    stale = Job.objects.get(pk=job.pk)

    assert job.cancel() is True
    assert stale.fail(code="staff", message="Stopped.") is False  # already ended elsewhere

    kinds = sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["hold", "release"]
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELED
