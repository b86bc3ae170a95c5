"""What people do with jobs: submit links (admitted only if they can be sent in time) and
retry. A job's credits are held when it is created; how it moves on and ends, and how its
credits are settled then, is `Job`'s business (`Job.move`, `.fail`, `.succeed`, `.cancel`).
"""

import math
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Membership
from apps.billing import ledger
from apps.jobs import queue
from apps.jobs.limits import check_monthly_limit
from apps.jobs.models import InputKind, Job, JobEvent, JobState
from apps.jobs.providers import provider_for
from apps.jobs.providers.base import RemovalProvider


class ProviderBusy(Exception):
    """More videos are waiting than the provider can take before they would be given up on.

    Nothing was created or held; the message says how long the wait is.
    """


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
    submission_id: uuid.UUID | None = None,
) -> list[Job]:
    """Creates one job per link and holds their credits, all or nothing. The jobs share one
    submission (a batch: one "videos done" email), `submission_id` when the form named one.

    The database takes each (submission, line) once, so a form sent twice makes its jobs once
    and raises `AlreadySubmitted` the second time. Raises `ProviderBusy`,
    `ledger.InsufficientCredits`, `ledger.TeamFrozen` or `MonthlyLimitReached`; then nothing
    is created. Sending is the dispatcher's job: the new jobs are due at once, and it sends
    them as fast as the provider takes them.
    """
    if submission_id is not None and (made := _jobs_of_submission(membership, submission_id)):
        raise AlreadySubmitted(made)  # the usual case, told before any limit is checked
    try:
        return _create_jobs(
            membership=membership,
            links=links,
            retry_of=retry_of,
            submission_id=submission_id or uuid.uuid4(),
        )
    except IntegrityError:
        # Two copies of the form at once: the database let only the first one in.
        if submission_id is None or not (made := _jobs_of_submission(membership, submission_id)):
            raise
        raise AlreadySubmitted(made) from None


def _jobs_of_submission(membership: Membership, submission_id: uuid.UUID) -> list[Job]:
    return list(
        Job.objects.filter(team=membership.team, submission_id=submission_id).order_by(
            "submission_index"
        )
    )


def _create_jobs(
    *,
    membership: Membership,
    links: list[str],
    retry_of: Job | None,
    submission_id: uuid.UUID,
) -> list[Job]:
    credits = settings.CREDITS_PER_VIDEO
    provider = provider_for(InputKind.LINK)
    admit(provider, count=len(links))
    now = timezone.now()
    with transaction.atomic():
        check_monthly_limit(membership=membership, credits=credits * len(links))
        jobs = Job.objects.bulk_create(
            Job(
                team=membership.team,
                created_by=membership.user,
                input_kind=InputKind.LINK,
                source_url=link,
                provider=provider.name,
                credits=credits,
                retry_of=retry_of,
                submission_id=submission_id,
                submission_index=position,
                next_check_at=now,
            )
            for position, link in enumerate(links)
        )
        JobEvent.objects.bulk_create(
            JobEvent(job=job, to_state=JobState.QUEUED, detail="Link submitted.") for job in jobs
        )
        ledger.hold_for_jobs(team=membership.team, jobs=jobs)
        queue.check_low_balance(membership.team_id)
        queue.start_poller()
    return jobs


def admit(provider: RemovalProvider, *, count: int) -> None:
    """Refuses `count` new jobs if the provider could not start them all before they would be
    given up on, at the rate it takes new tasks, behind the jobs already waiting for it."""
    waiting = Job.objects.filter(provider=provider.name, state=JobState.QUEUED).count()
    wait = (waiting + count) / provider.starts_per_second()
    # A minute to spare for the video itself once it is sent.
    allowed = settings.JOB_GIVE_UP_SECONDS - 60
    if wait <= allowed:
        return
    minutes = math.ceil(wait / 60)
    later = math.ceil((wait - allowed) / 60)
    videos = "video" if count == 1 else f"{count} videos"
    raise ProviderBusy(
        f"{provider.label} is very busy: {waiting:,} videos are waiting to be sent, so your "
        f"{videos} would wait about {minutes} minutes, longer than we let a video wait. "
        f"Nothing was charged; please try again in about {later} "
        f"{'minute' if later == 1 else 'minutes'}."
    )


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
