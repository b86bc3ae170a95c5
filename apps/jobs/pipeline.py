"""The worker's side of a job: send it to the provider, follow it, save the result.

Every step starts from the job's row, acts only if the job is still in the state the step
expects, and moves it on with a conditional update — so duplicate deliveries, late callbacks
and the sweep can all run the same step safely. No step waits on the provider: a job that is
not ready gets a `next_check_at`, and the dispatcher (the poller, one at a time) hands out
due jobs — sending only as fast as each provider takes new tasks. How a job may move, and how
it ends and is settled, is `Job`'s business (`apps.jobs.models`): nothing here touches credits.
"""

import contextlib
import logging
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.jobs import queue, routing, swc_pool
from apps.jobs.backoff import next_poll_delay, retry_delay
from apps.jobs.download import DownloadError, store_result
from apps.jobs.models import InputKind, Job, JobState, ProviderAlert
from apps.jobs.providers import get_provider
from apps.jobs.providers.base import (
    NoAnswer,
    PermanentError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RemovalProvider,
    RetryableError,
    StopsTasks,
    TaskInput,
    TaskState,
    TaskStatus,
)
from apps.jobs.uploads import expire_originals

logger = logging.getLogger("unmark.jobs")

POLL_BATCH = 200
MAX_RETRY_HINT_SECONDS = 60
# How long a queued job handed to a worker is left alone: if its send message is lost, the
# dispatcher sends it again after this.
SEND_CLAIM_SECONDS = 10
MIN_ROUND_SECONDS = 0.02


# --- Sending ----------------------------------------------------------------------------------
def send_job(job: Job, *, claimed_at: float | None = None) -> None:
    """Starts the job's task at the provider the dispatcher chose for it (`routing.split`).
    Only the dispatcher calls this, with a start it claimed at `claimed_at`."""
    if job.state != JobState.QUEUED:
        return
    if not routing.can_send(job.provider):
        # Handed out just before the provider was switched off or found unavailable: back in
        # line, where the dispatcher chooses again.
        job.touch(next_check_at=timezone.now())
        return
    if job.provider == swc_pool.PROVIDER:
        swc_pool.send_job(job)  # the pool picks a server and runs its own steps
        return
    provider = get_provider(job.provider)
    if _past_deadline(job):
        # The provider would start (and bill) a task whose result we would no longer wait for.
        job.fail(code="timeout", message=too_late_to_send(provider))
        return
    now = timezone.now()
    # Recorded before the request goes out: a job in SUBMITTED without a task id may have a
    # task at the provider, and is never simply sent again (see `_recover_unconfirmed`).
    if not job.move(
        JobState.SUBMITTED,
        detail=f"Sending to {provider.label}.",
        attempts=job.attempts + 1,
        submitted_at=now,
        next_check_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
    ):
        return
    if claimed_at is not None:
        provider.starting(claimed_at)
    try:
        task_id = provider.start(TaskInput.for_job(job))
    except ProviderUnavailable as exc:
        record_provider_alert(provider.name, exc)
        _wait_for_provider(job, provider, exc)
        return
    except NoAnswer as exc:
        if job.callback_url is None:
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
            record_provider_alert(provider.name, down)
            _wait_for_provider(job, provider, down)
            return
        _send_later(job, provider, exc)
        return
    except PermanentError as exc:
        job.fail(
            code=exc.code or "rejected",
            message=f"{provider.label} refused this video: {exc.message}",
        )
        return
    resolve_provider_alerts(provider.name)
    job.touch(task_id=task_id, next_check_at=timezone.now() + _poll_delay(job))
    if job.callback_url is None:
        queue.start_poller()  # no callback will come: polling starts now, not next minute


def _unreachable(exc: RetryableError) -> bool:
    """Whether the request never reached the provider: no connection could be made. (The
    clients speak httpx and raise their errors from its own.)"""
    return isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


def _send_later(job: Job, provider: RemovalProvider, exc: RetryableError) -> None:
    # The provider's own rate limit (a 429) is nobody's fault and uses up no attempt.
    attempts = job.attempts - 1 if isinstance(exc, RateLimited) else job.attempts
    if _past_deadline(job):
        job.fail(code=exc.code or "busy", message=too_late_to_send(provider))
        return
    if attempts >= settings.MAX_SEND_ATTEMPTS:
        job.fail(
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
    job.move(
        JobState.QUEUED,
        detail=f"{provider.label} is not taking videos right now ({exc}); {then}",
        attempts=job.attempts - 1,
        next_check_at=timezone.now(),
    )


def _await_confirmation(job: Job) -> None:
    job.touch(next_check_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS))


def _recover_unconfirmed(job: Job) -> None:
    """A job marked sent whose task id never came back (the worker died mid-request, or the
    answer was lost): a task may exist at the provider.

    With callbacks, the provider names that task when it ends and the job adopts it
    (`adopt_task`); it is never sent twice, and if no callback comes by the deadline it fails
    and is refunded. Without callbacks nothing can find the task, so the job is sent again.
    """
    if job.provider == swc_pool.PROVIDER:
        # SWC never calls back: an upload cut off before its answer is simply sent again.
        swc_pool.send_again(job, detail="The upload to the cleaning server was cut off.")
        return
    provider = get_provider(job.provider)
    if job.callback_url is None:
        job.move(
            JobState.QUEUED,
            detail=f"{provider.label} never confirmed this video; sending it again.",
            next_check_at=timezone.now(),
        )
    elif _past_deadline(job):
        job.fail(
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
    if job.touch(task_id=task_id):
        logger.info("adopted task", extra={"job": job.public_id, "task_id": task_id})
        _apply_status(job, status)


def stop_task(job: Job) -> None:
    """A person canceled the job after it went out: its provider stops the task, so it is not
    run (and billed) to the end. The job is already canceled and refunded either way."""
    provider = get_provider(job.provider)
    if job.state != JobState.CANCELED or not job.task_id or not isinstance(provider, StopsTasks):
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
    if job.provider == swc_pool.PROVIDER:
        swc_pool.check_job(job)
        return
    if job.state not in (JobState.SUBMITTED, JobState.PROCESSING) or not job.task_id:
        return
    provider = get_provider(job.provider)
    try:
        status = provider.status(job.task_id)
    except ProviderUnavailable as exc:
        # The task exists; maintenance may only delay it. Keep following it until the deadline.
        record_provider_alert(provider.name, exc)
        _check_later(job)
        return
    except RetryableError as exc:
        _check_later(job, hint=exc.retry_after)
        return
    except PermanentError as exc:
        job.fail(
            code=exc.code or "lost",
            message=f"{provider.label} lost track of this video ({exc.message}). "
            "Nothing was charged.",
        )
        return
    _apply_status(job, status)


def _apply_status(job: Job, status: TaskStatus) -> None:
    provider = get_provider(job.provider)
    if status.cost_time_ms is not None:
        job.provider_cost_ms = status.cost_time_ms
    if status.cost_micros is not None:
        job.provider_cost_micros = status.cost_micros
    if status.progress is not None:
        job.provider_progress = max(0, min(100, status.progress))
    if status.state == TaskState.FAILED:
        if status.cost_micros is not None:
            # A failed task can be billed too (Replicate charges its compute time).
            job.touch(provider_cost_micros=status.cost_micros)
        job.fail(
            code=f"{provider.name}_{status.failure_code or 'failed'}",
            message=provider_failure(provider, status),
        )
    elif status.state == TaskState.SUCCEEDED:
        if not status.result_urls:
            job.fail(
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
            # Saving right here spares a trip through the queue; the state is recorded
            # first, so if this worker dies the poller sends the job to another one.
            download_job(job)
    elif status.state == TaskState.RUNNING and job.state == JobState.SUBMITTED:
        job.move(
            JobState.PROCESSING,
            detail=f"{provider.label} is removing the watermark.",
            checks=job.checks + 1,
            provider_progress=job.provider_progress,
            next_check_at=timezone.now() + _poll_delay(job),
        )
    else:
        _check_later(job)


def _check_later(job: Job, *, hint: float | None = None) -> None:
    if _past_deadline(job):
        minutes = settings.JOB_GIVE_UP_SECONDS // 60
        label = get_provider(job.provider).label
        job.fail(
            code="timeout",
            message=f"{label} did not finish this video within {minutes} minutes. "
            "Nothing was charged.",
        )
        return
    delay = max(_poll_delay(job).total_seconds(), hint or 0)
    job.touch(
        checks=job.checks + 1,
        provider_progress=job.provider_progress,
        next_check_at=timezone.now() + timedelta(seconds=delay),
    )


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
        job.fail(
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
            job.fail(
                code="download",
                message=f"The finished video could not be saved: {exc.message} "
                "Nothing was charged.",
            )
        return
    if not job.succeed(
        name=stored.name, size=stored.size, sha256=stored.sha256, poster=stored.poster
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


# --- The dispatcher (poller) and the sweep -------------------------------------------------
def poll_due_jobs(*, run_seconds: float | None = None, wait_for_lock: float = 0) -> int:
    """Hands every due job to the right step, for up to `run_seconds`; one poller at a time.

    This is where sending is scheduled: queued jobs go out only as fast as their provider's
    limit allows (`claim_starts`), and not at all while it is unavailable. django-q2's
    scheduler wakes only every 30 s, too slow for Kie's 2-second polling guidance, so this loop
    runs while jobs are in flight and stops as soon as none are due soon. `wait_for_lock` lets
    a poller started with a new cluster outlast the lock of one that died with the old one.
    """
    token = secrets.token_hex(8)
    budget = settings.POLLER_RUN_SECONDS if run_seconds is None else run_seconds
    if not _take_poller_lock(token, wait_for_lock):
        return 0
    handed = 0
    out_of_time = False
    try:
        stop_at = time.monotonic() + budget
        while True:
            probe_unavailable_providers()
            handed += _hand_out_due_jobs()
            if not _work_due_soon():
                break
            if time.monotonic() >= stop_at:
                out_of_time = True
                break
            time.sleep(_seconds_until_next_round())
            holder = _poller_lock_holder()
            if holder is None and not _take_poller_lock(token, 0):
                break  # our lock lapsed (a slow round) and another poller took over
            if holder not in (None, token):
                break
            _renew_poller_lock(token)
    finally:
        if _poller_lock_holder() == token:
            cache.delete(queue.POLLER_LOCK)
    if out_of_time and budget > 0:
        # Work is still due: a successor takes over now, not at the next sweep. (A poller
        # of a single round, budget 0, is a one-off.)
        queue.start_poller()
    return handed


# The lock holds its poller's token and when it was last renewed (every round, about every
# second): a waiting poller gives way at once to a live one, and waits out a dead one's.
LIVE_POLLER_SECONDS = 2.0


def _renew_poller_lock(token: str) -> None:
    cache.set(queue.POLLER_LOCK, (token, time.time()), timeout=queue.POLLER_LOCK_SECONDS)


def _poller_lock_holder() -> str | None:
    value = cache.get(queue.POLLER_LOCK)
    return str(value[0]) if isinstance(value, tuple | list) else value


def _take_poller_lock(token: str, wait_seconds: float) -> bool:
    give_up_at = time.monotonic() + wait_seconds
    while not cache.add(queue.POLLER_LOCK, (token, time.time()), timeout=queue.POLLER_LOCK_SECONDS):
        value = cache.get(queue.POLLER_LOCK)
        renewed_at = value[1] if isinstance(value, tuple | list) else time.time()
        if time.monotonic() >= give_up_at or time.time() - renewed_at < LIVE_POLLER_SECONDS:
            return False
        time.sleep(0.25)
    return True


def _work_due_soon() -> bool:
    """Keep looping only for checks due within the horizon; later ones (callback fallbacks,
    long back-offs) are left to the sweep, so the poller does not hold a worker idle.

    Tasks on the SWC pool always count: their checks come due every moment, but a round that
    happens to see every one of them handed out would otherwise stop the poller, and the pool
    would wait for a new one to get through the queue."""
    horizon = timezone.now() + timedelta(seconds=settings.POLLER_HORIZON_SECONDS)
    return (
        Job.objects.in_flight()
        .filter(
            Q(next_check_at__lte=horizon)
            | Q(provider=swc_pool.PROVIDER, state__in=swc_pool.ACTIVE_STATES)
        )
        .exists()
    )


def _queued_kinds(now: datetime) -> list[InputKind]:
    """The kinds of input of the queued jobs that are due."""
    kinds = (
        Job.objects.due(now)
        .filter(state=JobState.QUEUED)
        .order_by()
        .values_list("input_kind", flat=True)
        .distinct()
    )
    return [InputKind(kind) for kind in kinds]


def _seconds_until_next_round() -> float:
    """The next round starts when the next start frees up, if that is sooner than the usual
    interval: a one-second cadence alone would leave a freed start unused for most of it."""
    soonest = min(
        (
            stand.provider.seconds_until_start()
            for kind in _queued_kinds(timezone.now())
            for stand in routing.standings(kind)
            if stand.sendable
        ),
        default=settings.POLLER_INTERVAL_SECONDS,
    )
    return min(settings.POLLER_INTERVAL_SECONDS, max(MIN_ROUND_SECONDS, soonest))


def _hand_out_due_jobs() -> int:
    now = timezone.now()
    _fail_overdue_queued(now)
    due = Job.objects.due(now).order_by("next_check_at", "id")
    queued = due.filter(state=JobState.QUEUED)
    handed = 0
    # Queued jobs of each kind, in line order, shared out by the routing policy: each provider
    # gets as many as it has starts for now; the rest stay due. The provider is chosen here,
    # as each job is sent, so a job that waited goes wherever there is room by then. Checks
    # and saves are looked up apart, so a long queue never holds them back.
    for kind in _queued_kinds(now):
        candidates = list(
            queued.filter(input_kind=kind).values_list("pk", "next_check_at", "provider")[
                :POLL_BATCH
            ]
        )
        at = 0
        for share in routing.split(kind, len(candidates)):
            sent: list[int] = []
            for pk, next_check_at, provider in candidates[at : at + share.send]:
                moved = _moved_to(share.provider.name, provider)
                if _claim(pk, JobState.QUEUED, next_check_at, SEND_CLAIM_SECONDS, **moved):
                    sent.append(pk)
            queue.send_to_provider(sent, claimed_at=share.claimed_at)
            handed += len(sent)
            at += share.send + share.keep
    grace = settings.JOB_LEASE_SECONDS
    others = due.exclude(state=JobState.QUEUED)[:POLL_BATCH]
    for pk, state, task_id, next_check_at in others.values_list(
        "pk", "state", "task_id", "next_check_at"
    ):
        if not _claim(pk, state, next_check_at, grace):
            continue
        handed += 1
        if state == JobState.DOWNLOADING:
            queue.download(pk)
        elif task_id:
            queue.check(pk)
        else:
            _recover_unconfirmed(Job.objects.get(pk=pk))
    return handed


def _fail_overdue_queued(now: datetime) -> None:
    """Queued jobs past their deadline (their provider stayed unavailable, or busy) are
    refunded here, since nothing sends them any more."""
    deadline = now - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS)
    for job in Job.objects.filter(state=JobState.QUEUED, created_at__lt=deadline)[:POLL_BATCH]:
        job.fail(code="timeout", message=too_late_to_send(get_provider(job.provider)))


def _moved_to(chosen: str, provider: str) -> dict[str, str]:
    """The fields that put a job that has not started anywhere in line for `chosen`."""
    if chosen == provider:
        return {}
    # The server of a provider it leaves means nothing to the next one.
    return {"provider": chosen, "provider_server": ""}


def _claim(
    pk: int, state: str, next_check_at: datetime | None, lease_seconds: float, **fields: str
) -> bool:
    """Claims a due job by moving its next check on: a second poller or the sweep skips it,
    and if the step handed out is lost, the job comes due again after the lease. A queued
    job is given to its provider in the same UPDATE (`fields`)."""
    lease = timezone.now() + timedelta(seconds=lease_seconds)
    return bool(
        Job.objects.filter(pk=pk, state=state, next_check_at=next_check_at).update(
            next_check_at=lease, **fields
        )
    )


def sweep() -> None:
    """Every minute: end retention of old results, tidy temporary files, probe unavailable
    providers, then poll.

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
        expired += job.expire()
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


# --- An unavailable provider --------------------------------------------------------------
def record_provider_alert(provider: str, exc: ProviderUnavailable) -> None:
    """Counts one more refusal on the open alert of this kind, opening it if there is none.

    Every occurrence counts, however many workers report at once: the count is one UPDATE
    with F(), and when two workers open the alert together, the loser counts on the winner's.
    """
    message = str(exc)[:300]
    while True:
        if ProviderAlert.objects.filter(
            provider=provider, kind=exc.kind, resolved_at__isnull=True
        ).update(occurrences=F("occurrences") + 1, last_seen_at=timezone.now(), message=message):
            return
        try:
            with transaction.atomic():
                ProviderAlert.objects.create(provider=provider, kind=exc.kind, message=message)
        except IntegrityError:
            continue  # another worker opened it first: count on it
        logger.error("provider unavailable", extra={"provider": provider, "kind": exc.kind})
        return


def resolve_provider_alerts(provider: str) -> None:
    ProviderAlert.objects.filter(provider=provider, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )


def unavailable_providers() -> list[str]:
    """Providers with an open alert: nothing new is sent to them until a probe clears it."""
    return list(
        ProviderAlert.objects.filter(resolved_at__isnull=True)
        .values_list("provider", flat=True)
        .distinct()
    )


def probe_unavailable_providers() -> None:
    """Asks each unavailable provider, every PROVIDER_PROBE_SECONDS, whether it is back; clears
    its alerts when it is, so waiting jobs go out without anyone having to act."""
    for name in unavailable_providers():
        if not cache.add(f"jobs:probe:{name}", True, timeout=settings.PROVIDER_PROBE_SECONDS):
            continue
        try:
            get_provider(name).probe()
        except ProviderUnavailable as exc:
            record_provider_alert(name, exc)
        except ProviderError as exc:
            logger.warning("provider probe failed", extra={"provider": name, "error": str(exc)})
        else:
            resolve_provider_alerts(name)
            logger.info("provider back", extra={"provider": name})


def too_late_to_send(provider: RemovalProvider) -> str:
    minutes = settings.JOB_GIVE_UP_SECONDS // 60
    return (
        f"{provider.label} could not take this video within {minutes} minutes. "
        "Nothing was charged; please try again later."
    )


def provider_failure(provider: RemovalProvider, status: TaskStatus) -> str:
    reason = status.failure_message or "no reason given"
    return f"{provider.label} could not remove the watermark: {reason}. Nothing was charged."
