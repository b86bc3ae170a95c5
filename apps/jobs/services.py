"""What people and staff do with jobs: submit links and files, retry, cancel — and how a job
ends.

A job's credits are held when it is created and settled exactly once when it ends: captured
when it succeeds, released when it fails or is canceled. The state change and the settlement
happen in one transaction, so either both are recorded or neither is.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.limits import check_monthly_limit
from apps.accounts.models import Membership, Team
from apps.billing import ledger
from apps.jobs import queue
from apps.jobs.models import InputKind, Job, JobEvent, JobState, Upload
from apps.jobs.providers import get_provider, provider_for


class AlreadySubmitted(Exception):
    """This form submission already made its jobs (a second click, a resent form)."""

    def __init__(self, jobs: list[Job]) -> None:
        super().__init__("These videos were already sent.")
        self.jobs = jobs


def jobs_of_submission(*, team: Team, submission: uuid.UUID | None) -> list[Job]:
    if submission is None:
        return []
    return list(
        Job.objects.filter(team=team, submission_id=submission).order_by("submission_index")
    )


class UploadGone(Exception):
    """An upload named in the form was already submitted, or discarded."""


@dataclass(frozen=True)
class AlreadyCleaned:
    """An input this team already cleaned, and the job whose result it still keeps."""

    key: str  # the link, or the file's SHA-256
    label: str  # what the person recognises: the link or the file's name
    job: Job


def split_already_cleaned(
    *, team: Team, links: Sequence[str], uploads: Sequence[Upload]
) -> tuple[list[str], list[Upload], list[AlreadyCleaned]]:
    """Sets aside the links and files whose result this team already keeps, so they are not
    charged again unless the person asks for it. Returns (new links, new uploads, set aside)."""
    kept = Job.objects.filter(team=team).already_cleaned(
        links=links, sha256s=[upload.sha256 for upload in uploads]
    )
    set_aside = [AlreadyCleaned(link, link, kept[link]) for link in links if link in kept]
    set_aside += [
        AlreadyCleaned(upload.sha256, upload.name, kept[upload.sha256])
        for upload in uploads
        if upload.sha256 in kept
    ]
    return (
        [link for link in links if link not in kept],
        [upload for upload in uploads if upload.sha256 not in kept],
        set_aside,
    )


def submit_jobs(
    *,
    membership: Membership,
    links: Sequence[str] = (),
    uploads: Sequence[Upload] = (),
    submission: uuid.UUID | None = None,
    retry_of: Job | None = None,
) -> list[Job]:
    """Creates one job per link and per uploaded file and holds their credits, all or nothing.

    The uploads become the jobs' originals (their rows are used up). `submission` is the
    form's own id: the database takes each (submission, item) once, so a form sent twice makes
    its jobs once and raises `AlreadySubmitted` the second time. Raises `NoProvider`,
    `UploadGone`, `ledger.InsufficientCredits`, `ledger.TeamFrozen` or `MonthlyLimitReached`;
    then nothing is created or used up.
    """
    if made := jobs_of_submission(team=membership.team, submission=submission):
        raise AlreadySubmitted(made)  # the usual case, told before anything is checked
    try:
        return _create_jobs(
            membership=membership,
            links=links,
            uploads=uploads,
            submission=submission,
            retry_of=retry_of,
        )
    except IntegrityError:
        # Two copies of the form at once: the database let only the first one in.
        if not (made := jobs_of_submission(team=membership.team, submission=submission)):
            raise
        raise AlreadySubmitted(made) from None


def _create_jobs(
    *,
    membership: Membership,
    links: Sequence[str],
    uploads: Sequence[Upload],
    submission: uuid.UUID | None,
    retry_of: Job | None,
) -> list[Job]:
    credits = settings.CREDITS_PER_VIDEO
    link_provider = provider_for(InputKind.LINK) if links else ""
    file_provider = provider_for(InputKind.FILE) if uploads else ""
    # As many link jobs as Kie's rate limit has room for are sent on commit (the poller
    # re-sends one only if its message got lost); the rest are due at once, and the poller
    # sends them as room frees up. File jobs all go: the pool books them or keeps them waiting.
    now = timezone.now()
    send_now = get_provider().free_create_slots() if links else 0
    resend_after = now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
    count = len(links) + len(uploads)
    with transaction.atomic():
        check_monthly_limit(membership=membership, credits=credits * count)
        if uploads:
            used, _ = Upload.objects.filter(
                team=membership.team, pk__in=[upload.pk for upload in uploads]
            ).delete()
            if used != len(uploads):
                raise UploadGone("Some of these files were already submitted or removed.")
        new_jobs = [
            Job(
                source_url=link,
                provider=link_provider,
                next_check_at=resend_after if position < send_now else now,
            )
            for position, link in enumerate(links)
        ] + [
            Job(
                input_kind=InputKind.FILE,
                original_file=upload.file.name,
                original_name=upload.name,
                original_size=upload.size,
                original_sha256=upload.sha256,
                media_info=upload.media_info,
                original_poster=upload.poster.name,
                provider=file_provider,
                next_check_at=resend_after,
            )
            for upload in uploads
        ]
        for index, job in enumerate(new_jobs):
            job.team, job.created_by, job.credits = membership.team, membership.user, credits
            job.retry_of, job.submission_id, job.submission_index = retry_of, submission, index
        jobs = Job.objects.bulk_create(new_jobs)
        JobEvent.objects.bulk_create(
            JobEvent(job=job, to_state=JobState.QUEUED, detail=job.submitted_detail) for job in jobs
        )
        ledger.hold_for_jobs(team=membership.team, jobs=jobs)
        link_jobs, file_jobs = jobs[: len(links)], jobs[len(links) :]
        queue.send_to_provider([job.pk for job in link_jobs[:send_now] + file_jobs])
        if len(link_jobs) > send_now:
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
        if original.input_kind == InputKind.LINK:
            [new_job] = submit_jobs(
                membership=membership, links=[original.source_url], retry_of=original
            )
            return new_job
        if not original.original_file:
            raise NotRetryable(
                "The original file was deleted after the retention period. Please upload it again."
            )
        # The stored original moves on to the new attempt (so deleting it when the old job's
        # retention ends cannot pull it from under the new one): it becomes an upload again.
        upload = original.take_back_original()
        [new_job] = submit_jobs(membership=membership, uploads=[upload], retry_of=original)
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


def succeed_job(job: Job, *, name: str, size: int, sha256: str, poster: str = "") -> bool:
    """Ends the job with its stored result (and its poster frame) and charges its held
    credits."""
    now = timezone.now()
    with transaction.atomic():
        if not job.move(
            JobState.SUCCEEDED,
            detail=f"Saved {size:,} bytes.",
            result_file=name,
            result_size=size,
            result_sha256=sha256,
            result_poster=poster,
            finished_at=now,
            next_check_at=None,
            expires_at=now + timedelta(days=settings.RESULT_RETENTION_DAYS),
        ):
            return False
        ledger.capture(job=job)
    return True
