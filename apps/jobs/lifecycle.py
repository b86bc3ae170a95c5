"""How a job ends, and everything that follows from it, in one place.

`Job.move` (the model) only moves a job along `MOVES`, with a conditional UPDATE and a
timeline row. Ending a job does more, and all of it happens here, in the transaction of the
move, so all of it is recorded or none of it: its credits are settled (captured on success,
released on failure or cancellation, exactly once: the ledger's settle key), its provider
forgets the task, its team's webhooks are written (an outbox), and the follow-ups that must
not hold up the move (the batch email, the low-balance check) are enqueued to run once it
commits.

A job that ends without a credit hold (a bug: every job is created with one) still ends: the
ledger's `NoHold` is an ops alert (an ERROR log line, which Sentry turns into an event), never
a reason to roll the move back, which left the job in flight for the sweep to retry for ever.
"""

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.billing import ledger
from apps.jobs import events, queue
from apps.jobs.models import Job, JobState
from apps.removal.registry import get_provider
from apps.sizes import file_size

logger = logging.getLogger("unmark.jobs")


def fail_job(job: Job, *, code: str, message: str) -> bool:
    """Ends the job as failed and gives its credits back. False if it had already moved on."""
    with transaction.atomic():
        if not job.move(
            JobState.FAILED,
            detail=message,
            failure_code=code[:40],
            failure_message=message[:300],
            finished_at=timezone.now(),
            next_check_at=None,
        ):
            return False
        _settle(job, lambda: ledger.release(job=job, memo=f"Failed: {code}"))
        _ended(job)
    return True


def succeed_job(
    job: Job,
    *,
    name: str,
    size: int,
    sha256: str,
    poster: str = "",
    credentials: dict[str, Any] | None = None,
) -> bool:
    """Ends the job with its stored result (its poster frame, what its Content Credentials
    say) and charges its held credits. False if it had already moved on."""
    now = timezone.now()
    with transaction.atomic():
        if not job.move(
            JobState.SUCCEEDED,
            detail=f"Saved the clean video ({file_size(size)}).",
            result_file=name,
            result_size=size,
            result_sha256=sha256,
            result_poster=poster,
            credentials=credentials,
            finished_at=now,
            next_check_at=None,
            expires_at=now + timedelta(days=settings.RESULT_RETENTION_DAYS),
        ):
            return False
        _settle(job, lambda: ledger.capture(job=job))
        _ended(job)
    return True


def cancel_job(job: Job) -> bool:
    """Cancels a job that has not reached the provider yet, or whose task the provider can
    stop (a worker then asks it to), releasing its credits."""
    if not job.is_cancelable:
        return False
    sent = job.state != JobState.QUEUED
    with transaction.atomic():
        if not job.move(
            JobState.CANCELED,
            detail="Canceled; stopping it." if sent else "Canceled before it was sent.",
            finished_at=timezone.now(),
            next_check_at=None,
        ):
            return False
        _settle(job, lambda: ledger.release(job=job, memo="Canceled"))
        _ended(job)
        if sent:
            queue.stop_task(job.pk)
    return True


def expire_job(job: Job) -> bool:
    """Forgets the stored result and posters after the retention period (the caller deletes
    the files first, so a failed delete leaves the job pointing at them for the next try).
    Nobody is told: the retention period is no news."""
    return job.move(
        JobState.EXPIRED,
        detail="Result deleted after the retention period.",
        result_file="",
        result_poster="",
        original_poster="",
    )


def _settle(job: Job, settle: Callable[[], bool]) -> None:
    """Captures or releases the job's hold. Without one there is nothing to settle: an alert
    for staff (why did a job run without a hold?), and the job ends all the same. Not a
    ProviderAlert: those say a provider is in trouble and steer routing; this is our own."""
    try:
        settle()
    except ledger.NoHold:
        logger.error(
            "job ended without a credit hold",
            extra={"job": job.public_id, "team": job.team_id, "state": job.state},
        )


def _ended(job: Job) -> None:
    # Whatever its provider keeps for the task (a place on one of its machines) goes.
    get_provider(job.provider).forget(job.task_id)
    # The batch email and the low-balance check, in a worker once this commits: they never
    # hold up the move, and a rolled-back move tells nobody.
    queue.job_finished(job.pk)
    # The team's webhooks, written with the move (an outbox) for the same reason.
    events.job_ended(job)
