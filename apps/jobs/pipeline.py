"""The worker's side of a job: send it to the provider, follow it, save the result.

Every step starts from the job's row, acts only if the job is still in the state the step
expects, and moves it on with a conditional update — so duplicate deliveries, late callbacks
and the sweep can all run the same step safely. No step waits on the provider: a job that is
not ready gets a `next_check_at`, and the poller (one at a time) picks up due jobs.
"""

import contextlib
import logging
import secrets
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db.models import F
from django.utils import timezone

from apps.jobs import queue, swc_pool
from apps.jobs.backoff import next_poll_delay, retry_delay
from apps.jobs.download import DownloadError, store_result
from apps.jobs.models import Job, JobState, ProviderAlert
from apps.jobs.providers import get_provider
from apps.jobs.providers.base import (
    PermanentError,
    ProviderUnavailable,
    RateLimited,
    RetryableError,
    TaskState,
    TaskStatus,
)
from apps.jobs.services import fail_job, succeed_job
from apps.jobs.uploads import expire_originals

logger = logging.getLogger("unmark.jobs")

POLL_BATCH = 200
MAX_RETRY_HINT_SECONDS = 60
_TOO_LATE_TO_SEND = (
    "Kie was too busy to accept this video after several tries. "
    "Nothing was charged; please try again later."
)
POLLER_LOCK_SECONDS = 15


# --- Sending ----------------------------------------------------------------------------------
def send_job(job: Job) -> None:
    if job.provider == swc_pool.PROVIDER:
        swc_pool.send_job(job)
        return
    if job.state != JobState.QUEUED:
        return
    if _past_deadline(job):
        # Kie would start (and bill) a task whose result we would no longer wait for.
        fail_job(job, code="timeout", message=_TOO_LATE_TO_SEND)
        return
    now = timezone.now()
    if not job.move(
        JobState.SUBMITTED,
        detail="Sending to Kie.",
        attempts=job.attempts + 1,
        submitted_at=now,
        next_check_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
    ):
        return
    provider = get_provider()
    try:
        task_id = provider.start(job.source_url, callback_url=job.callback_url)
    except ProviderUnavailable as exc:
        record_provider_alert(provider.name, exc)
        fail_job(job, code=f"provider_{exc.kind}", message=unavailable_message(exc))
        return
    except RetryableError as exc:
        _send_later(job, exc)
        return
    except PermanentError as exc:
        fail_job(job, code=exc.code or "rejected", message=f"Kie refused this link: {exc.message}")
        return
    resolve_provider_alerts(provider.name)
    job.touch(task_id=task_id, next_check_at=timezone.now() + _poll_delay(job))
    if job.callback_url is None:
        queue.start_poller()  # no callback will come: polling starts now, not next minute


def _send_later(job: Job, exc: RetryableError) -> None:
    # Rate limits are nobody's fault and do not use up attempts; other errors do.
    attempts = job.attempts - 1 if isinstance(exc, RateLimited) else job.attempts
    if attempts >= settings.MAX_SEND_ATTEMPTS or _past_deadline(job):
        fail_job(job, code=exc.code or "busy", message=_TOO_LATE_TO_SEND)
        return
    # A provider's Retry-After is a hint, not a reason to hold credits for an hour.
    delay = retry_delay(max(attempts, 1), hint=min(exc.retry_after or 0, MAX_RETRY_HINT_SECONDS))
    job.move(
        JobState.QUEUED,
        detail=f"Kie is busy ({exc}); trying again in {delay:.0f} s.",
        attempts=attempts,
        next_check_at=timezone.now() + timedelta(seconds=delay),
    )
    queue.start_poller()


# --- Following ---------------------------------------------------------------------------------
def check_job(job: Job) -> None:
    if job.provider == swc_pool.PROVIDER:
        swc_pool.check_job(job)
        return
    if job.state not in (JobState.SUBMITTED, JobState.PROCESSING) or not job.task_id:
        return
    provider = get_provider()
    try:
        status = provider.status(job.task_id)
    except ProviderUnavailable as exc:
        # The task exists; a pause may only stop new work. Keep following it until the deadline.
        record_provider_alert(provider.name, exc)
        _check_later(job)
        return
    except RetryableError as exc:
        _check_later(job, hint=exc.retry_after)
        return
    except PermanentError as exc:
        fail_job(
            job,
            code=exc.code or "lost",
            message=f"Kie lost track of this video ({exc.message}). Nothing was charged.",
        )
        return
    _apply_status(job, status)


def _apply_status(job: Job, status: TaskStatus) -> None:
    if status.cost_time_ms is not None:
        job.provider_cost_ms = status.cost_time_ms
    if status.state == TaskState.FAILED:
        fail_job(job, code=f"kie_{status.failure_code or 'failed'}", message=kie_failure(status))
    elif status.state == TaskState.SUCCEEDED:
        if not status.result_urls:
            fail_job(
                job,
                code="no_result",
                message="Kie finished but sent no video. Nothing was charged.",
            )
        elif job.move(
            JobState.DOWNLOADING,
            detail="Kie removed the watermark; saving the video.",
            result_url=status.result_urls[0],
            provider_cost_ms=job.provider_cost_ms,
            checks=job.checks + 1,
            next_check_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        ):
            # Saving right here spares a trip through the queue; the state is recorded
            # first, so if this worker dies the poller sends the job to another one.
            download_job(job)
    elif status.state == TaskState.RUNNING and job.state == JobState.SUBMITTED:
        job.move(
            JobState.PROCESSING,
            detail="Kie is removing the watermark.",
            checks=job.checks + 1,
            next_check_at=timezone.now() + _poll_delay(job),
        )
    else:
        _check_later(job)


def _check_later(job: Job, *, hint: float | None = None) -> None:
    if _past_deadline(job):
        minutes = settings.JOB_GIVE_UP_SECONDS // 60
        fail_job(
            job,
            code="timeout",
            message=f"Kie did not finish this video within {minutes} minutes. Nothing was charged.",
        )
        return
    delay = max(_poll_delay(job).total_seconds(), hint or 0)
    job.touch(checks=job.checks + 1, next_check_at=timezone.now() + timedelta(seconds=delay))


def _poll_delay(job: Job) -> timedelta:
    started = job.submitted_at or job.created_at
    age = (timezone.now() - started).total_seconds()
    return timedelta(seconds=next_poll_delay(age, expecting_callback=bool(job.callback_url)))


def _past_deadline(job: Job) -> bool:
    return timezone.now() - job.created_at > timedelta(seconds=settings.JOB_GIVE_UP_SECONDS)


# --- Saving ------------------------------------------------------------------------------------
def download_job(job: Job) -> None:
    if job.state != JobState.DOWNLOADING:
        return
    if job.download_attempts >= settings.MAX_DOWNLOAD_ATTEMPTS:
        # Counted when each try starts, so crashed or killed tries count too.
        fail_job(
            job,
            code="download",
            message="The finished video could not be saved after several tries. "
            "Nothing was charged.",
        )
        return
    lease_seconds = settings.JOB_LEASE_SECONDS
    # One download per job at a time, across all workers. The lock expires on its own if its
    # worker dies; the poller then sees the job's check come due and starts another.
    lock, token = f"jobs:download:{job.pk}", secrets.token_hex(8)
    if not cache.add(lock, token, timeout=lease_seconds):
        return
    try:
        _download_with_lease(job, lock, lease_seconds)
    finally:
        if cache.get(lock) == token:
            cache.delete(lock)


def _download_with_lease(job: Job, lock: str, lease_seconds: int) -> None:
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
    attempt = secrets.token_hex(4)
    try:
        stored = store_result(
            job.result_url,
            storage_name=f"results/{job.team.public_id}/{job.public_id}-{attempt}.mp4",
            temp_name=f"{job.public_id}-{attempt}.part",
            heartbeat=heartbeat,
            trusted_client=swc_pool.download_client(job),
        )
    except DownloadError as exc:
        if exc.gone and job.provider == swc_pool.PROVIDER:
            # The SWC server restarted between finishing and our download: clean it again.
            swc_pool.send_again(
                job, detail="The cleaning server lost the finished video; sending it again."
            )
        elif exc.retryable and job.download_attempts < settings.MAX_DOWNLOAD_ATTEMPTS:
            delay = retry_delay(job.download_attempts)
            job.touch(next_check_at=timezone.now() + timedelta(seconds=delay))
            queue.start_poller()
        else:
            fail_job(
                job,
                code="download",
                message=f"The finished video could not be saved: {exc.message} "
                "Nothing was charged.",
            )
        return
    if not succeed_job(
        job, name=stored.name, size=stored.size, sha256=stored.sha256, poster=stored.poster
    ):
        # The job moved on meanwhile (staff failed it, or another try won): this copy is ours
        # alone, under a name no other try uses, so it can go.
        for name in (stored.name, stored.poster):
            if name:
                default_storage.delete(name)


def _remove_abandoned_parts(job: Job, *, older_than: float) -> None:
    """Partial files of this job left by workers that died: a live download writes to its
    file all the time, so one untouched for a whole lease is abandoned."""
    cutoff = time.time() - older_than
    for part in Path(settings.DOWNLOAD_TEMP_DIR).glob(f"{job.public_id}-*.part"):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_mtime < cutoff:
                part.unlink()


# --- The poller and the sweep ------------------------------------------------------------------
def poll_due_jobs(*, run_seconds: float | None = None) -> int:
    """Hands every due job to the right step, for up to `run_seconds`; one poller at a time.

    django-q2's scheduler wakes only every 30 s, too slow for Kie's 2-second polling guidance,
    so this loop runs while jobs are in flight and stops as soon as none are.
    """
    token = secrets.token_hex(8)
    budget = settings.POLLER_RUN_SECONDS if run_seconds is None else run_seconds
    # A short lock, renewed every round: a poller whose worker dies frees its place quickly.
    if not cache.add(queue.POLLER_LOCK, token, timeout=POLLER_LOCK_SECONDS):
        return 0
    handed = 0
    out_of_time = False
    try:
        stop_at = time.monotonic() + budget
        while True:
            swc_pool.probe_due_servers()
            swc_pool.fail_overdue_queued()
            handed += _hand_out_due_jobs()
            if not _work_due_soon():
                break
            if out_of_time := time.monotonic() >= stop_at:
                break
            time.sleep(settings.POLLER_INTERVAL_SECONDS)
            if cache.get(queue.POLLER_LOCK) != token:
                break  # our lock lapsed and another poller took over
            cache.touch(queue.POLLER_LOCK, POLLER_LOCK_SECONDS)
    finally:
        if cache.get(queue.POLLER_LOCK) == token:
            cache.delete(queue.POLLER_LOCK)
    if out_of_time and run_seconds is None and budget > 0:
        # Work is still coming due: a successor takes over now, not at the next minute's sweep
        # (a pool of servers left without checks for a minute would sit idle).
        queue.start_poller()
    return handed


def _work_due_soon() -> bool:
    """Keep looping only for checks due within the horizon; later ones (callback fallbacks,
    long back-offs) are left to the sweep, so the poller does not hold a worker idle."""
    horizon = timezone.now() + timedelta(seconds=settings.POLLER_HORIZON_SECONDS)
    return Job.objects.in_flight().filter(next_check_at__lte=horizon).exists()


def _hand_out_due_jobs() -> int:
    now = timezone.now()
    grace = now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
    handed = 0
    # Queued jobs go out only as fast as the provider's rate limit allows (the rest stay
    # due); checks and saves are looked up apart, so a long queue never holds them back.
    due = Job.objects.due(now).order_by("next_check_at", "id")
    queued = due.filter(state=JobState.QUEUED)
    # Kie jobs as fast as Kie's create limit allows, files as the SWC pool has room.
    to_kie = queued.exclude(provider=swc_pool.PROVIDER)[: get_provider().free_create_slots()]
    to_swc = queued.filter(provider=swc_pool.PROVIDER)
    to_swc = to_swc[: swc_pool.free_slots()] if to_swc.exists() else to_swc.none()
    others = due.exclude(state=JobState.QUEUED)[:POLL_BATCH]
    for pk, state, task_id, next_check_at in [
        *to_kie.values_list("pk", "state", "task_id", "next_check_at"),
        *to_swc.values_list("pk", "state", "task_id", "next_check_at"),
        *others.values_list("pk", "state", "task_id", "next_check_at"),
    ]:
        # Claim the job by moving its next check on; a second poller or sweep skips it.
        if not Job.objects.filter(pk=pk, state=state, next_check_at=next_check_at).update(
            next_check_at=grace
        ):
            continue
        handed += 1
        if state == JobState.QUEUED:
            queue.send_to_provider([pk])
        elif state == JobState.DOWNLOADING:
            queue.download(pk)
        elif task_id:
            queue.check(pk)
        else:
            _resend_stuck(pk)
    return handed


def _resend_stuck(pk: int) -> None:
    """A job marked sent but without a task id: the worker stopped mid-send. Send it again."""
    job = Job.objects.get(pk=pk)
    if job.move(
        JobState.QUEUED,
        detail="The worker stopped while sending this video; sending it again.",
        next_check_at=timezone.now(),
    ):
        queue.send_to_provider([pk])


def sweep() -> None:
    """Every minute: end retention of old results, tidy temporary files, then poll.

    Each step runs whatever happened to the one before: housekeeping trouble (a storage
    outage, say) must never stop jobs from being followed.
    """
    for step in (expire_results, expire_originals, remove_stale_temp_files, poll_due_jobs):
        try:
            step()
        except Exception:
            logger.exception("sweep step failed", extra={"step": step.__name__})


def expire_results() -> int:
    expired = 0
    for job in Job.objects.filter(state=JobState.SUCCEEDED, expires_at__lte=timezone.now()):
        # The file goes first: if deleting it fails, the job still points at it and the next
        # sweep tries again, instead of leaving a file nothing refers to.
        for stored in (job.result_file, job.result_poster, job.original_poster):
            if stored:
                default_storage.delete(str(stored.name))
        if job.move(
            JobState.EXPIRED,
            detail="Result deleted after the retention period.",
            result_file="",
            result_poster="",
            original_poster="",
        ):
            expired += 1
    return expired


def remove_stale_temp_files(max_age_seconds: float = 3600) -> int:
    """Deletes partial downloads left behind by killed workers."""
    removed = 0
    cutoff = time.time() - max_age_seconds
    for path in Path(settings.DOWNLOAD_TEMP_DIR).glob("*.part"):
        with contextlib.suppress(FileNotFoundError):  # a download may finish meanwhile
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


# --- Telling people about an unavailable provider -----------------------------------------------
def record_provider_alert(provider: str, exc: ProviderUnavailable) -> None:
    updated = ProviderAlert.objects.filter(
        provider=provider, kind=exc.kind, resolved_at__isnull=True
    ).update(occurrences=F("occurrences") + 1, last_seen_at=timezone.now(), message=str(exc)[:300])
    if not updated:
        ProviderAlert.objects.get_or_create(
            provider=provider,
            kind=exc.kind,
            resolved_at=None,
            defaults={"message": str(exc)[:300]},
        )
        logger.error("provider unavailable", extra={"provider": provider, "kind": exc.kind})


def resolve_provider_alerts(provider: str) -> None:
    ProviderAlert.objects.filter(provider=provider, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )


def unavailable_message(exc: ProviderUnavailable) -> str:
    if exc.kind == "paused":
        return (
            "Kie has paused Sora watermark removal for now (OpenAI is winding Sora down). "
            "Nothing was charged; please try again later."
        )
    return (
        "The watermark remover is unavailable on our side right now. Nothing was charged, "
        "and our team has been alerted."
    )


def kie_failure(status: TaskStatus) -> str:
    reason = status.failure_message or "no reason given"
    return f"Kie could not remove the watermark: {reason}. Nothing was charged."
