"""The worker's side of a job, the same for every provider: send it, follow it, save the result.

Every step starts from the job's row, acts only if the job is still in the state the step
expects, and moves it on with a conditional update — so duplicate deliveries, late callbacks
and the sweep can all run the same step safely. No step waits on the provider: a job that is
not ready gets a `next_check_at`, and the dispatcher (`apps.jobs.dispatcher`) hands out due
jobs. Providers are met only through their interface (`apps.removal.base`): what a provider
does differently (a pool of its own machines, callbacks, tasks it can stop) it says there.
How a job ends, and how its credits are settled then, is `apps.jobs.lifecycle`.
"""

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

import httpx
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.jobs import lifecycle, queue
from apps.jobs.download import DownloadError, ResultRefused, store_result
from apps.jobs.models import Job, JobState
from apps.jobs.sealing import seal_for
from apps.jobs.uploads import original_link
from apps.removal import alerts, routing
from apps.removal.backoff import next_poll_delay, retry_delay
from apps.removal.base import (
    InputKind,
    InputMissing,
    NoAnswer,
    PermanentError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RemovalProvider,
    RetryableError,
    SendAgain,
    TaskInput,
    TaskState,
    TaskStatus,
)
from apps.removal.registry import get_provider

logger = logging.getLogger("unmark.jobs")

MAX_RETRY_HINT_SECONDS = 60


# --- What a provider is given ------------------------------------------------------------------
def task_input(job: Job) -> TaskInput:
    """The job as its provider sees it: a link, or ways to read or sign its stored original;
    a long start (an upload) keeps the job's lease alive as it goes."""
    lease = timedelta(seconds=settings.JOB_LEASE_SECONDS)

    def heartbeat() -> None:
        # A large upload sends no news until it is answered: this keeps the dispatcher from
        # presuming the worker dead meanwhile.
        job.touch(next_check_at=timezone.now() + lease)

    if job.input_kind == InputKind.LINK:
        return TaskInput(
            kind=InputKind.LINK,
            reference=str(job.public_id),
            callback_url=job.callback_url,
            link=job.source_url,
            heartbeat=heartbeat,
        )
    return TaskInput(
        kind=InputKind.FILE,
        reference=str(job.public_id),
        callback_url=job.callback_url,
        open=lambda: open_original(job),
        signed_url=lambda seconds: original_link(job, seconds=seconds),
        name=job.original_name,
        size=job.original_size,
        sha256=job.original_sha256,
        storage_name=str(job.original_file.name),
        heartbeat=heartbeat,
    )


def open_original(job: Job) -> tuple[IO[bytes], int]:
    """The stored original as a stream and its size, never read whole into memory (the caller
    closes the stream). Raises `InputMissing` when it is no longer stored.

    django-storages' S3 file object buffers the whole object (in memory by default), so from
    S3 the object's body is streamed straight from the GET instead.
    """
    name = str(job.original_file.name)
    if not name:
        raise InputMissing("the job has no stored original")
    storage = job.original_file.storage
    bucket = getattr(storage, "bucket", None)
    try:
        if bucket is not None:
            key = storage._normalize_name(name)  # type: ignore[attr-defined]
            answer = bucket.meta.client.get_object(Bucket=bucket.name, Key=key)
            return answer["Body"], int(answer["ContentLength"])
        size = storage.size(name)
        return storage.open(name, "rb"), size
    except FileNotFoundError as exc:
        raise InputMissing(str(exc)) from exc
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise InputMissing(str(exc)) from exc
        raise OSError(f"storage: {exc}") from exc


# --- Sending ----------------------------------------------------------------------------------
def send_job(job: Job, *, claimed_at: float | None = None) -> None:
    """Starts the job's task at the provider the dispatcher chose for it (`routing.split`).
    Only the dispatcher calls this, with a start it claimed at `claimed_at`."""
    if job.state != JobState.QUEUED:
        return
    provider = get_provider(job.provider)
    if past_deadline(job):
        # The provider would start (and bill) a task whose result we would no longer wait for.
        lifecycle.fail_job(job, code="timeout", message=too_late_to_send(provider))
        return
    if job.attempts >= provider.max_sends:
        lifecycle.fail_job(
            job,
            code=f"{provider.name}_lost",
            message=f"{provider.label} lost this video {job.attempts} times. Nothing was "
            "charged; please try again later.",
        )
        return
    now = timezone.now()
    # Recorded before the request goes out: a job in SUBMITTED without a task id may have a
    # task at the provider, and is never simply sent again (see `recover_unconfirmed`).
    if not job.move(
        JobState.SUBMITTED,
        detail=f"Sending to {provider.label}.",
        attempts=job.attempts + 1,
        submitted_at=now,
        task_id="",
        provider_server="",
        provider_progress=None,
        # What customers are told from now on, kept with the job (never worked out again).
        cleaned_by=provider.credit_line(),
        next_check_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
    ):
        return
    if not routing.can_send(job.provider):
        # Handed out just before the provider was switched off or found unavailable: back in
        # line, where the dispatcher chooses again. Asked once the job is SUBMITTED, so a send
        # either shows as in flight or sees every alert opened before it.
        _back_in_line(job, detail=f"Not sent: {provider.label} takes no work right now.")
        return
    if claimed_at is not None:
        provider.starting(claimed_at)
    try:
        task_id = provider.start(task_input(job))
    except ProviderUnavailable as exc:
        alerts.record(provider.name, exc)
        _wait_for_provider(job, provider, exc)
        return
    except SendAgain as exc:
        _back_in_line(job, detail=f"{exc.message} It goes out again in its turn.")
        return
    except NoAnswer as exc:
        if job.callback_url is None or not provider.calls_back:
            _send_later(job, provider, exc)  # nothing could ever name the task: send again
        else:
            # The task may exist: wait for its callback to name it rather than pay for two.
            _await_confirmation(job)
        return
    except RetryableError as exc:
        if _unreachable(exc):
            # Nothing answers at all: the provider is down, not busy. The job waits without
            # using a try, or goes to the next provider of the policy, until a probe finds
            # this one back.
            down = ProviderUnavailable(str(exc), code=exc.code, kind="down")
            alerts.record(provider.name, down)
            _wait_for_provider(job, provider, down)
            return
        _send_later(job, provider, exc)
        return
    except InputMissing:
        lifecycle.fail_job(
            job,
            code="original_missing",
            message="The uploaded video is no longer stored; please upload it again. "
            "Nothing was charged.",
        )
        return
    except PermanentError as exc:
        lifecycle.fail_job(
            job,
            code=exc.code or "rejected",
            message=f"{provider.label} refused this video: {exc.message}",
        )
        return
    alerts.resolve(provider.name)
    next_check_at = timezone.now() + _poll_delay(job, provider)
    if not job.record_task(task_id, next_check_at=next_check_at):
        # Answered after the job moved on (its lease ran out mid-upload and it was sent again,
        # or it ended): nothing will follow this task, so it must not hold a machine's place.
        provider.forget(task_id)
        return
    if job.callback_url is None or provider.poll_seconds is not None:
        queue.start_poller()  # no callback will come: polling starts now, not next minute


def _unreachable(exc: RetryableError) -> bool:
    """Whether the request never reached the provider: no connection could be made. (The
    clients speak httpx and raise their errors from its own.)"""
    return isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


def _send_later(job: Job, provider: RemovalProvider, exc: RetryableError) -> None:
    # The provider's own rate limit (a 429) is nobody's fault and uses up no attempt.
    attempts = job.attempts - 1 if isinstance(exc, RateLimited) else job.attempts
    if past_deadline(job):
        lifecycle.fail_job(job, code=exc.code or "busy", message=too_late_to_send(provider))
        return
    if attempts >= settings.MAX_SEND_ATTEMPTS:
        lifecycle.fail_job(
            job,
            code=exc.code or "busy",
            message=f"{provider.label} was too busy to accept this video after several tries. "
            "Nothing was charged; please try again later.",
        )
        return
    # A provider's Retry-After is a hint, not a reason to hold credits for an hour.
    delay = retry_delay(max(attempts, 1), hint=min(exc.retry_after or 0, MAX_RETRY_HINT_SECONDS))
    reason = "is busy" if isinstance(exc, RateLimited) else "had a problem"
    job.move(
        JobState.QUEUED,
        detail=f"{provider.label} {reason} ({exc}); trying again in {delay:.0f} s.",
        attempts=attempts,
        next_check_at=timezone.now() + timedelta(seconds=delay),
    )


def _wait_for_provider(job: Job, provider: RemovalProvider, exc: ProviderUnavailable) -> None:
    """Back in line without using an attempt: the dispatcher sends nothing to an unavailable
    provider (a periodic probe tells when it is back), and gives the job to the next provider
    of the policy if one can take it."""
    elsewhere = routing.first_choice(InputKind(job.input_kind))
    then = (
        "this one goes to the next service that can take it."
        if elsewhere is not None
        else "this one waits and goes out when it is back."
    )
    # In plain words: the provider's own code and message are for staff (its alert).
    reason = routing.unavailable_reason(provider.label, exc.kind)
    job.move(
        JobState.QUEUED,
        detail=f"Not sent: {reason}; {then}",
        attempts=job.attempts - 1,
        next_check_at=timezone.now(),
    )


def _back_in_line(job: Job, *, detail: str) -> None:
    """Back in line at its old place without using a try (it is due since it was created, so
    it goes out before the jobs that came after it)."""
    if job.move(
        JobState.QUEUED, detail=detail, attempts=job.attempts - 1, next_check_at=job.created_at
    ):
        queue.start_poller()


def send_again(job: Job, *, detail: str, **fields: object) -> bool:
    """Puts a job whose task was lost (or whose result vanished) back in line, for another
    try. Same job, same hold: it is charged once however often it is sent."""
    provider = get_provider(job.provider)
    task_id = job.task_id
    if not job.move(
        JobState.QUEUED,
        detail=detail,
        task_id="",
        provider_progress=None,
        result_url="",
        # Due since it was created: it goes out before jobs that came after it.
        next_check_at=job.created_at,
        **fields,
    ):
        return False
    provider.forget(task_id)
    queue.start_poller()
    return True


def _await_confirmation(job: Job) -> None:
    job.touch(next_check_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS))


def recover_unconfirmed(job: Job) -> None:
    """A job marked sent whose task id never came back (the worker died mid-request, or the
    answer was lost): a task may exist at the provider.

    Where the provider calls back, it names that task when it ends and the job adopts it
    (`adopt_task`); it is never sent twice, and if no callback comes by the deadline it fails
    and is refunded. Without callbacks nothing can find the task, so the job is sent again.
    """
    provider = get_provider(job.provider)
    if job.callback_url is None or not provider.calls_back:
        send_again(job, detail=f"{provider.label} never confirmed this video; sending it again.")
    elif past_deadline(job):
        lifecycle.fail_job(
            job,
            code="unconfirmed",
            message=f"{provider.label} never confirmed this video. Nothing was charged.",
        )
    else:
        _await_confirmation(job)


def adopt_task(job: Job, task_id: str) -> None:
    """The provider called back about `task_id` for a job that has no task id yet: the task
    its lost start created. Adopted only if the provider confirms it was made for this job."""
    if job.task_id or job.state != JobState.SUBMITTED:
        check_job(job)
        return
    provider = get_provider(job.provider)
    try:
        status = provider.status(task_id)
    except ProviderError as exc:
        # The poller keeps the job waiting; the provider's next callback brings it back here.
        logger.warning("adoption check failed", extra={"job": job.public_id, "error": str(exc)})
        return
    if not job.callback_url or status.callback_url != job.callback_url:
        logger.warning("callback names a task of another job", extra={"job": job.public_id})
        return
    if job.record_task(task_id):
        logger.info("adopted task", extra={"job": job.public_id, "task_id": task_id})
        _apply_status(job, provider, status)


def stop_task(job: Job) -> None:
    """A person canceled the job after it went out: its provider stops the task, so it is not
    run (and billed) to the end. The job is already canceled and refunded either way."""
    provider = get_provider(job.provider)
    if job.state != JobState.CANCELED or not job.task_id or not provider.stops_tasks:
        return
    try:
        provider.cancel(job.task_id)
    except ProviderError as exc:
        # Nothing waits on this: the task runs to its end, and its result is never fetched.
        logger.warning("task not stopped", extra={"job": job.public_id, "error": str(exc)})
        return
    logger.info("task stopped", extra={"job": job.public_id, "task_id": job.task_id})


# --- Following ---------------------------------------------------------------------------------
def check_job(job: Job) -> None:
    if job.state not in (JobState.SUBMITTED, JobState.PROCESSING) or not job.task_id:
        return
    provider = get_provider(job.provider)
    try:
        status = provider.status(job.task_id)
    except ProviderUnavailable as exc:
        # The task exists; maintenance may only delay it. Keep following it until the deadline.
        alerts.record(provider.name, exc)
        _check_later(job, provider)
        return
    except RetryableError as exc:
        _check_later(job, provider, hint=exc.retry_after)
        return
    except PermanentError as exc:
        lifecycle.fail_job(
            job,
            code=exc.code or "lost",
            message=f"{provider.label} lost track of this video ({exc.message}). "
            "Nothing was charged.",
        )
        return
    _apply_status(job, provider, status)


def _apply_status(job: Job, provider: RemovalProvider, status: TaskStatus) -> None:
    if status.machine and status.machine != job.provider_server:
        job.touch(provider_server=status.machine)
    if status.state in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.LOST):
        queue.start_poller()  # its place at the provider is free: the next one goes now
    if status.cost_time_ms is not None:
        job.provider_cost_ms = status.cost_time_ms
    if status.cost_micros is not None:
        job.provider_cost_micros = status.cost_micros
    if status.state == TaskState.LOST:
        send_again(job, detail=status.failure_message)
    elif status.state == TaskState.FAILED:
        _failed(job, provider, status)
    elif status.state == TaskState.SUCCEEDED:
        if not status.result_urls:
            lifecycle.fail_job(
                job,
                code="no_result",
                message=f"{provider.label} finished but sent no video. Nothing was charged.",
            )
        elif job.move(
            JobState.DOWNLOADING,
            detail=f"{provider.label} removed the watermark; saving the video.",
            result_url=status.result_urls[0],
            provider_cost_ms=job.provider_cost_ms,
            provider_cost_micros=job.provider_cost_micros,
            provider_progress=100,
            checks=job.checks + 1,
            next_check_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        ):
            # Saved by the default queue's workers: a long transfer here would hold a worker
            # that sends and checks (the poller hands the job out again if this is lost).
            queue.download(job.pk)
    elif status.state == TaskState.RUNNING and job.state == JobState.SUBMITTED:
        job.move(
            JobState.PROCESSING,
            detail=f"{provider.label} is removing the watermark.",
            checks=job.checks + 1,
            provider_progress=_percent(status.progress),
            next_check_at=timezone.now() + _poll_delay(job, provider),
        )
    else:
        _check_later(job, provider, progress=_percent(status.progress))


def _percent(progress: int | None) -> int | None:
    return None if progress is None else max(0, min(100, progress))


def _failed(job: Job, provider: RemovalProvider, status: TaskStatus) -> None:
    if status.cost_micros is not None:
        # A failed task can be billed too (Replicate charges its compute time).
        job.touch(provider_cost_micros=status.cost_micros)
    errors = job.provider_errors + 1
    if status.worth_another_try and errors < provider.tries_per_video:
        send_again(
            job,
            detail=f"{provider.label} could not process this video; trying it again.",
            provider_errors=errors,
        )
        return
    tries = f" ({errors} tries)" if errors > 1 else ""
    message = (
        status.failure_message
        if status.failure_is_whole
        else f"{provider.label} could not remove the watermark{tries}: "
        f"{status.failure_message or 'no reason given'}. Nothing was charged."
    )
    lifecycle.fail_job(
        job, code=f"{provider.name}_{status.failure_code or 'failed'}", message=message
    )


def _check_later(
    job: Job, provider: RemovalProvider, *, hint: float | None = None, progress: int | None = None
) -> None:
    if past_deadline(job):
        minutes = settings.JOB_GIVE_UP_SECONDS // 60
        lifecycle.fail_job(
            job,
            code="timeout",
            message=f"{provider.label} did not finish this video within {minutes} minutes. "
            "Nothing was charged.",
        )
        return
    delay = max(_poll_delay(job, provider).total_seconds(), hint or 0)
    job.touch(
        checks=job.checks + 1,
        provider_progress=job.provider_progress if progress is None else progress,
        next_check_at=timezone.now() + timedelta(seconds=delay),
    )
    if provider.poll_seconds is not None:
        # The dispatcher stops when it sees nothing due soon, which is what it sees while every
        # check is handed out: a check that comes back due must not wait for the next sweep.
        queue.start_poller()


def _poll_delay(job: Job, provider: RemovalProvider) -> timedelta:
    if provider.poll_seconds is not None:
        return timedelta(seconds=provider.poll_seconds)
    started = job.submitted_at or job.created_at
    age = (timezone.now() - started).total_seconds()
    expecting_callback = bool(job.callback_url) and provider.calls_back
    return timedelta(seconds=next_poll_delay(age, expecting_callback=expecting_callback))


def past_deadline(job: Job) -> bool:
    return timezone.now() - job.created_at > timedelta(seconds=settings.JOB_GIVE_UP_SECONDS)


def too_late_to_send(provider: RemovalProvider) -> str:
    minutes = settings.JOB_GIVE_UP_SECONDS // 60
    return (
        f"{provider.label} could not take this video within {minutes} minutes. "
        "Nothing was charged; please try again later."
    )


# --- Saving ------------------------------------------------------------------------------------
def download_job(job: Job) -> None:
    if job.state != JobState.DOWNLOADING:
        return
    if job.download_attempts >= settings.MAX_DOWNLOAD_ATTEMPTS:
        # Counted when each try starts, so crashed or killed tries count too.
        lifecycle.fail_job(
            job,
            code="download",
            message="The finished video could not be saved after several tries. "
            "Nothing was charged.",
        )
        return
    # One download per job at a time, across all workers. The lock expires on its own if its
    # worker dies; the poller then sees the job's check come due and starts another.
    with _download_lock(job) as held:
        if held:
            _download_with_lease(job)


@contextmanager
def _download_lock(job: Job) -> Iterator[bool]:
    lock, token = f"jobs:download:{job.pk}", secrets.token_hex(8)
    if not cache.add(lock, token, timeout=settings.JOB_LEASE_SECONDS):
        yield False
        return
    try:
        yield True
    finally:
        if cache.get(lock) == token:
            cache.delete(lock)


def _download_with_lease(job: Job) -> None:
    lease_seconds = settings.JOB_LEASE_SECONDS
    lock = f"jobs:download:{job.pk}"
    now = timezone.now()
    if not job.touch(
        download_attempts=job.download_attempts + 1,
        next_check_at=now + timedelta(seconds=lease_seconds),
    ):
        return

    def heartbeat(extra_seconds: float) -> None:
        # Tells the poller and other workers that this download is alive, and for how long
        # it may stay quiet (saving a large file sends no news until it is done).
        seconds = lease_seconds + extra_seconds
        job.touch(next_check_at=timezone.now() + timedelta(seconds=seconds))
        cache.touch(lock, int(seconds) + 1)

    _remove_abandoned_parts(job, older_than=lease_seconds)
    provider = get_provider(job.provider)
    attempt = secrets.token_hex(4)
    try:
        stored = store_result(
            job.result_url,
            storage_name=f"results/{job.team.public_id}/{job.public_id}-{attempt}.mp4",
            temp_name=f"{job.public_id}-{attempt}.part",
            heartbeat=heartbeat,
            seal=seal_for(job, provider),
            trusted_client=provider.result_client(job.task_id),
            kept=provider.open_result(job.task_id),
            # Results keep the original's sound: one that lost it is a failure, not a success.
            must_have_sound=bool(job.media_info.get("has_audio")),
        )
    except ResultRefused as exc:
        lifecycle.fail_job(
            job,
            code=exc.code,
            message=f"{exc.message} It was not kept, and nothing was charged; please try again.",
        )
        return
    except DownloadError as exc:
        if exc.gone and provider.redoes_lost_results:
            send_again(job, detail=f"{provider.label} lost the finished video; cleaning it again.")
        elif exc.retryable and job.download_attempts < settings.MAX_DOWNLOAD_ATTEMPTS:
            delay = retry_delay(job.download_attempts)
            job.touch(next_check_at=timezone.now() + timedelta(seconds=delay))
            queue.start_poller()
        else:
            lifecycle.fail_job(
                job,
                code=exc.code,
                message=f"The finished video could not be saved: {exc.message} "
                "Nothing was charged.",
            )
        return
    if not lifecycle.succeed_job(
        job,
        name=stored.name,
        size=stored.size,
        sha256=stored.sha256,
        poster=stored.poster,
        credentials=stored.credentials,
    ):
        # The job moved on meanwhile (staff failed it, or another try won): this copy is ours
        # alone, under a name no other try uses, so it can go.
        for name in (stored.name, stored.poster):
            if name:
                default_storage.delete(name)
    # Once the job has ended, any partial file of a dead try is useless, however recently it
    # was written (a killed worker may write after its last heartbeat).
    _remove_abandoned_parts(job, older_than=0)


def _remove_abandoned_parts(job: Job, *, older_than: float) -> None:
    """Partial files of this job left by workers that died: a live download writes to its
    file all the time, so one untouched for a whole lease is abandoned."""
    cutoff = time.time() - older_than
    for part in Path(settings.DOWNLOAD_TEMP_DIR).glob(f"{job.public_id}-*.part"):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_mtime < cutoff:
                part.unlink()
