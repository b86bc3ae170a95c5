"""What people do with jobs, the same from the dashboard and the API: submit links and files
(admitted only if some provider can take them in time) and retry. A job's credits are held when
it is created, all or nothing; how it moves on is the pipeline's business, and how it ends and
is settled, `apps.jobs.lifecycle`'s. Every refusal is a `Refused` and changes nothing.
"""

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Membership, Team
from apps.billing import ledger, low_balance
from apps.jobs import queue
from apps.jobs.limits import check_monthly_limit
from apps.jobs.models import Job, JobEvent, JobState, Upload
from apps.jobs.uploads import discard
from apps.refusals import Refused
from apps.removal import routing
from apps.removal.base import InputKind
from apps.removal.registry import accepts

RETRYABLE_STATES = (JobState.FAILED, JobState.CANCELED, JobState.EXPIRED)


class ProviderBusy(Refused):
    """More videos are waiting than the provider can take before they would be given up on.

    Nothing was created or held; the message says how long the wait is.
    """

    code, status, title = "provider-busy", 503, "Too busy"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "60"}


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


class UploadGone(Refused):
    """An upload named in the form was already submitted, or discarded."""

    code, status, title = "upload-gone", 409, "Uploads gone"

    def __init__(self) -> None:
        super().__init__(
            "Some of the files uploaded for this form were already submitted or removed. "
            "Nothing was submitted: please check the list below and upload them again if needed."
        )


class FilesNotAccepted(Refused):
    """No provider is set up to take uploaded files: every way in for a file refuses it."""

    code, status, title = "files-not-accepted", 409, "Files not accepted"

    def __init__(self) -> None:
        super().__init__(
            "Cleaning uploaded files is not available right now: no removal service that takes "
            "files is set up. Nothing was charged."
        )


def require_files_accepted() -> None:
    if not accepts(InputKind.FILE):
        raise FilesNotAccepted


@dataclass(frozen=True)
class Repeat:
    """A file sent again in one batch (at `index`), with the message that says so."""

    index: int
    upload: Upload
    message: str


def drop_repeated_files(uploads: Sequence[Upload]) -> tuple[list[Upload], list[Repeat]]:
    """The same file twice in one batch is cleaned (and charged) once: returns the first of
    each, in order, and the repeats. A second copy of a file is deleted with its stored files;
    an upload named twice is kept for its first place."""
    first_of: dict[str, Upload] = {}
    repeats = []
    for index, upload in enumerate(uploads):
        if earlier := first_of.get(upload.sha256):
            message = f"The same video as {earlier.name}: it is cleaned once."
            repeats.append(Repeat(index, upload, message))
            if upload.pk != earlier.pk:
                discard(upload)
        else:
            first_of[upload.sha256] = upload
    return list(first_of.values()), repeats


@dataclass(frozen=True)
class AlreadyCleaned:
    """An input this team already cleaned, or is cleaning now, and that job."""

    key: str  # the link, or the file's SHA-256
    label: str  # what the person recognises: the link or the file's name
    job: Job
    # The staged file set aside (None for a link): what "Process it again" submits.
    upload: Upload | None = None

    @property
    def in_flight(self) -> bool:
        return self.job.is_in_flight


def split_already_cleaned(
    *, team: Team, links: Sequence[str], uploads: Sequence[Upload]
) -> tuple[list[str], list[Upload], list[AlreadyCleaned]]:
    """Sets aside the links and files whose result this team already keeps, or that one of
    its jobs is cleaning now, so they are not charged again unless the person asks for it.
    Returns (new links, new uploads, set aside)."""
    taken = Job.objects.filter(team=team).already_taken(
        links=links, sha256s=[upload.sha256 for upload in uploads]
    )
    set_aside = [AlreadyCleaned(link, link, taken[link]) for link in links if link in taken]
    set_aside += [
        AlreadyCleaned(upload.sha256, upload.name, taken[upload.sha256], upload)
        for upload in uploads
        if upload.sha256 in taken
    ]
    return (
        [link for link in links if link not in taken],
        [upload for upload in uploads if upload.sha256 not in taken],
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
    its jobs once and raises `AlreadySubmitted` the second time. Raises a `Refused` (no
    provider, too busy, uploads gone, not enough credits, team frozen, monthly limit reached);
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
    # Refused here, with the reason, when no provider can take the kind at all (switched off,
    # down); which provider cleans each job is chosen when it is sent.
    link_provider = routing.provider_at_submission(InputKind.LINK) if links else None
    file_provider = routing.provider_at_submission(InputKind.FILE) if uploads else None
    if links:
        admit(InputKind.LINK, count=len(links))
    if uploads:
        admit(InputKind.FILE, count=len(uploads))
    # Sending is the dispatcher's job: the new jobs are due at once, and it sends them as fast
    # as their providers take them.
    now = timezone.now()
    # Every batch is one submission (one "videos done" email), named by its form or not.
    submission = submission or uuid.uuid4()
    count = len(links) + len(uploads)
    with transaction.atomic():
        check_monthly_limit(membership=membership, credits=credits * count)
        if uploads:
            used, _ = Upload.objects.filter(
                team=membership.team, pk__in=[upload.pk for upload in uploads]
            ).delete()
            if used != len(uploads):
                raise UploadGone
        new_jobs = [
            Job(input_kind=InputKind.LINK, source_url=link, provider=link_provider.name)
            for link in links
            if link_provider
        ] + [
            Job(
                input_kind=InputKind.FILE,
                original_file=upload.file.name,
                original_name=upload.name,
                original_size=upload.size,
                original_sha256=upload.sha256,
                media_info=upload.media_info,
                original_poster=upload.poster.name,
                provider=file_provider.name,
            )
            for upload in uploads
            if file_provider
        ]
        for index, job in enumerate(new_jobs):
            job.team, job.created_by, job.credits = membership.team, membership.user, credits
            job.retry_of, job.submission_id, job.submission_index = retry_of, submission, index
            job.next_check_at = now
        jobs = Job.objects.bulk_create(new_jobs)
        JobEvent.objects.bulk_create(
            JobEvent(job=job, to_state=JobState.QUEUED, detail=job.submitted_detail) for job in jobs
        )
        ledger.hold_for_jobs(team=membership.team, jobs=jobs)
        low_balance.check_soon(membership.team_id)
        queue.start_poller()
    return jobs


def admit(kind: InputKind, *, count: int) -> None:
    """Refuses `count` new jobs of this kind if the providers that take it could not start
    them all before they would be given up on, at the rate they take new tasks together,
    behind the jobs of that kind already waiting."""
    providers = routing.accepting(kind)
    waiting = Job.objects.filter(input_kind=kind, state=JobState.QUEUED).count()
    wait = (waiting + count) / sum(provider.starts_per_second() for provider in providers)
    # A minute to spare for the video itself once it is sent.
    allowed = settings.JOB_GIVE_UP_SECONDS - 60
    if wait <= allowed:
        return
    minutes = math.ceil(wait / 60)
    later = math.ceil((wait - allowed) / 60)
    videos = "video" if count == 1 else f"{count} videos"
    names = " and ".join(provider.label for provider in providers)
    be = "is" if len(providers) == 1 and not names.endswith("s") else "are"
    raise ProviderBusy(
        f"{names} {be} very busy: {waiting:,} videos are waiting to be sent, so your "
        f"{videos} would wait about {minutes} minutes, longer than we let a video wait. "
        f"Nothing was charged; please try again in about {later} "
        f"{'minute' if later == 1 else 'minutes'}."
    )


class NotRetryable(Refused):
    """The job cannot be tried again; the message says why in plain words."""

    code, status, title = "not-retryable", 409, "Cannot be tried again"


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
