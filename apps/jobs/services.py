"""What people and staff do with jobs: submit links, retry, cancel — and how a job ends.

A job's credits are held when it is created and settled exactly once when it ends: captured
when it succeeds, released when it fails or is canceled. The state change and the settlement
happen in one transaction, so either both are recorded or neither is.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Membership
from apps.billing import ledger
from apps.jobs import queue
from apps.jobs.limits import check_monthly_limit
from apps.jobs.models import Job, JobEvent, JobState
from apps.jobs.providers import get_provider


class AlreadySubmitted(Exception):
    """This form submission already made its jobs (a second click, a resent form)."""

    def __init__(self, jobs: list[Job]) -> None:
        super().__init__("These links were already sent.")
        self.jobs = jobs


def submit_links(
    *,
    membership: Membership,
    links: list[str],
    retry_of: Job | None = None,
    submission: uuid.UUID | None = None,
) -> list[Job]:
    """Creates one job per link and holds their credits, all or nothing.

    `submission` is the form's own id: the database takes each (submission, line) once, so a
    form sent twice makes its jobs once and raises `AlreadySubmitted` the second time.
    Raises `ledger.InsufficientCredits`, `ledger.TeamFrozen` or `MonthlyLimitReached`; then
    nothing is created.
    """
    if submission is not None and (made := _jobs_of_submission(membership, submission)):
        raise AlreadySubmitted(made)  # the usual case, told before any limit is checked
    try:
        return _create_jobs(
            membership=membership, links=links, retry_of=retry_of, submission=submission
        )
    except IntegrityError:
        # Two copies of the form at once: the database let only the first one in.
        if submission is None or not (made := _jobs_of_submission(membership, submission)):
            raise
        raise AlreadySubmitted(made) from None


def _jobs_of_submission(membership: Membership, submission: uuid.UUID) -> list[Job]:
    return list(
        Job.objects.filter(team=membership.team, submission_id=submission).order_by(
            "submission_index"
        )
    )


def _create_jobs(
    *,
    membership: Membership,
    links: list[str],
    retry_of: Job | None,
    submission: uuid.UUID | None,
) -> list[Job]:
    credits = settings.CREDITS_PER_VIDEO
    provider = get_provider()
    # As many jobs as the provider's rate limit has room for are sent on commit (the poller
    # re-sends one only if its message got lost); the rest are due at once, and the poller
    # sends them as room frees up.
    now = timezone.now()
    send_now = provider.free_create_slots()
    resend_after = now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
    with transaction.atomic():
        check_monthly_limit(membership=membership, credits=credits * len(links))
        jobs = Job.objects.bulk_create(
            Job(
                team=membership.team,
                created_by=membership.user,
                source_url=link,
                provider=provider.name,
                credits=credits,
                retry_of=retry_of,
                submission_id=submission,
                submission_index=position if submission else None,
                next_check_at=resend_after if position < send_now else now,
            )
            for position, link in enumerate(links)
        )
        JobEvent.objects.bulk_create(
            JobEvent(job=job, to_state=JobState.QUEUED, detail="Link submitted.") for job in jobs
        )
        ledger.hold_for_jobs(team=membership.team, jobs=jobs)
        queue.send_to_provider([job.pk for job in jobs[:send_now]])
        if len(jobs) > send_now:
            queue.start_poller()
    return jobs


class NotRetryable(Exception):
    """The job cannot be tried again; the message says why in plain words."""


class AlreadyRetried(Exception):
    def __init__(self, retry: Job) -> None:
        super().__init__("This video was already tried again.")
        self.retry = retry


def retry_job(*, membership: Membership, job: Job) -> Job:
    """A new job for the same link, with its own hold. The old job keeps its history.

    Once only: a double click, or two teammates at once, must not pay twice for one video.
    """
    with transaction.atomic():
        original = Job.objects.select_for_update().get(pk=job.pk)
        if not original.is_retryable:
            raise NotRetryable("Only a failed, canceled or expired video can be tried again.")
        if earlier := original.retries.first():
            raise AlreadyRetried(earlier)
        [new_job] = submit_links(
            membership=membership, links=[original.source_url], retry_of=original
        )
    return new_job


def cancel_job(*, job: Job) -> bool:
    """Cancels a job that has not reached the provider yet, releasing its credits."""
    if not job.is_cancelable:
        return False
    with transaction.atomic():
        if not job.move(
            JobState.CANCELED, detail="Canceled before it was sent.", finished_at=timezone.now()
        ):
            return False
        ledger.release(job=job, memo="Canceled")
    return True


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
        ledger.release(job=job, memo=f"Failed: {code}")
    return True


def succeed_job(job: Job, *, name: str, size: int, sha256: str) -> bool:
    """Ends the job with its stored result and charges its held credits."""
    now = timezone.now()
    with transaction.atomic():
        if not job.move(
            JobState.SUCCEEDED,
            detail=f"Saved {size:,} bytes.",
            result_file=name,
            result_size=size,
            result_sha256=sha256,
            finished_at=now,
            next_check_at=None,
            expires_at=now + timedelta(days=settings.RESULT_RETENTION_DAYS),
        ):
            return False
        ledger.capture(job=job)
    return True
