"""The dispatcher: one poller at a time hands every due job to the right step, and a sweep
every minute does the housekeeping.

This is where sending is scheduled: queued jobs go out only as fast as their provider takes
them (`claim_starts`, through the routing policy's `split`), and not at all while it is
unavailable; checks and saves come due by their `next_check_at`. A job handed out is claimed
by moving its next check on, so a second poller or the sweep skips it, and if the step is
lost, the job comes due again after the lease.
"""

import contextlib
import logging
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from apps.jobs import lifecycle, pipeline, queue
from apps.jobs.models import Job, JobState
from apps.jobs.uploads import expire_originals
from apps.removal import routing
from apps.removal.base import InputKind
from apps.removal.registry import REGISTRY, get_provider

logger = logging.getLogger("unmark.jobs")

POLL_BATCH = 200
# How long a queued job handed to a worker is left alone: if its send message is lost, the
# dispatcher sends it again after this.
SEND_CLAIM_SECONDS = 10
MIN_ROUND_SECONDS = 0.02
# The lock holds its poller's token and when it was last renewed (every round, about every
# second): a waiting poller gives way at once to a live one, and waits out a dead one's.
LIVE_POLLER_SECONDS = 2.0


def poll_due_jobs(*, run_seconds: float | None = None, wait_for_lock: float = 0) -> int:
    """Hands every due job to the right step, for up to `run_seconds`; one poller at a time.

    django-q2's scheduler wakes only every 30 s, too slow for Kie's 2-second polling guidance,
    so this loop runs while jobs are in flight and stops as soon as none are due soon.
    `wait_for_lock` lets a poller started with a new cluster outlast the lock of one that
    died with the old one.
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
            routing.probe_unavailable_providers()
            next_probe = routing.probe_down_machines()
            handed += _hand_out_due_jobs()
            if not _work_due_soon() and not _probe_due_soon(next_probe):
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


def _closely_followed() -> list[str]:
    """Providers whose tasks are checked every moment (their own machines answer at once)."""
    return [name for name in REGISTRY if get_provider(name).poll_seconds is not None]


def _work_due_soon() -> bool:
    """Keep looping only for checks due within the horizon; later ones (callback fallbacks,
    long back-offs) are left to the sweep, so the poller does not hold a worker idle.

    Tasks of closely followed providers always count: their checks come due every moment, but
    a round that happens to see every one of them handed out would otherwise stop the poller,
    and they would wait for a new one to get through the queue."""
    horizon = timezone.now() + timedelta(seconds=settings.POLLER_HORIZON_SECONDS)
    return (
        Job.objects.in_flight()
        .filter(
            Q(next_check_at__lte=horizon)
            | Q(
                provider__in=_closely_followed(),
                state__in=(JobState.SUBMITTED, JobState.PROCESSING),
            )
        )
        .exists()
    )


def _probe_due_soon(seconds: float | None) -> bool:
    """A down machine's next probe is due within the horizon: the poller stays for it, so a
    server that stalled is found back on its schedule even when there is no work at all.
    (Later probes are the minute sweep's: its poller probes whatever is due by then.)"""
    return seconds is not None and seconds <= settings.POLLER_HORIZON_SECONDS


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


def _in_hand(now: datetime) -> dict[str, int]:
    """Queued jobs already handed to a worker to be sent (claimed: their next check moved
    on), by provider. Each will take one of its provider's places once it starts. (A job paused
    a moment after trouble counts too, for the seconds of its pause: sending less then costs
    nothing.)"""
    rows = (
        Job.objects.filter(state=JobState.QUEUED, next_check_at__gt=now)
        .order_by()
        .values_list("provider")
        .annotate(count=Count("id"))
    )
    return dict(rows)


def _seconds_until_next_round() -> float:
    """The next round starts when the next start frees up, if that is sooner than the usual
    interval: a one-second cadence alone would leave a freed start unused for most of it."""
    now = timezone.now()
    in_hand = _in_hand(now)
    soonest = min(
        (
            stand.provider.seconds_until_start(in_hand=in_hand.get(stand.provider.name, 0))
            for kind in _queued_kinds(now)
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
    kinds = _queued_kinds(now)
    in_hand = _in_hand(now) if kinds else {}
    for kind in kinds:
        candidates = list(
            queued.filter(input_kind=kind).values_list("pk", "next_check_at", "provider")[
                :POLL_BATCH
            ]
        )
        at = 0
        for share in routing.split(kind, len(candidates), in_hand=in_hand):
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
            pipeline.recover_unconfirmed(Job.objects.get(pk=pk))
    return handed


def _fail_overdue_queued(now: datetime) -> None:
    """Queued jobs past their deadline (their provider stayed unavailable, or busy) are
    refunded here, since nothing sends them any more."""
    deadline = now - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS)
    for job in Job.objects.filter(state=JobState.QUEUED, created_at__lt=deadline)[:POLL_BATCH]:
        message = pipeline.too_late_to_send(get_provider(job.provider))
        lifecycle.fail_job(job, code="timeout", message=message)


def _moved_to(chosen: str, provider: str) -> dict[str, str]:
    """The fields that put a job that has not started anywhere in line for `chosen`."""
    if chosen == provider:
        return {}
    # The machine of a provider it leaves means nothing to the next one.
    return {"provider": chosen, "provider_server": ""}


def _claim(
    pk: int, state: str, next_check_at: datetime | None, lease_seconds: float, **fields: str
) -> bool:
    """Claims a due job by moving its next check on: a second poller or the sweep skips it,
    and if the step handed out is lost, the job comes due again after the lease. A queued
    job is given to its provider in the same UPDATE (`fields`)."""
    lease = timezone.now() + timedelta(seconds=lease_seconds)
    with transaction.atomic():
        # A row another transaction holds is skipped this round, not waited for: one stuck
        # transaction must never stop the poller (the soak once saw it wait 4 min 40 s).
        free = Job.objects.filter(
            pk=pk, state=state, next_check_at=next_check_at
        ).select_for_update(skip_locked=True)
        return bool(
            Job.objects.filter(pk__in=free.values("pk")).update(next_check_at=lease, **fields)
        )


# --- The sweep -------------------------------------------------------------------------------
def sweep() -> None:
    """Every minute: end retention of old results, tidy temporary files, then poll (which
    probes unavailable providers, and machines that are down, first).

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
        expired += lifecycle.expire_job(job)
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
