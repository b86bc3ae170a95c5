"""The one place that knows the task queue (django-q2): what is enqueued, what is scheduled,
and how a worker cluster runs (`manage.py worker`).

Everything is enqueued when the surrounding transaction commits: a worker never picks up a job
whose row it cannot see yet, and a rolled-back submission sends nothing.

A worker cluster, as it starts, checks the database, brings the schedules up to date and
starts a poller at once (due jobs move within seconds of a restart, not at the next sweep).
While it runs it records a heartbeat, with whether it reaches the database, for `/healthz`
and the admin; a cluster that reaches the broker but not the database hands every task it
takes back to the broker and stops, rather than swallow them.
"""

import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django_q.brokers import get_broker
from django_q.cluster import Cluster
from django_q.models import Schedule
from django_q.tasks import async_task

logger = logging.getLogger("unmark.jobs")

TASKS = "apps.jobs.tasks"
# Held by the running poller (see pipeline.poll_due_jobs) so that only one runs at a time;
# short, and renewed every round: after a crash, a new poller takes over within seconds.
POLLER_LOCK = "jobs:poller"
POLLER_LOCK_SECONDS = 4

# Every schedule the app needs, by function: (name, minutes between runs).
SCHEDULES = {
    f"{TASKS}.sweep": ("Sweep jobs", 1),
    # Webhook retries as they fall due, and any delivery whose first task was lost.
    f"{TASKS}.send_due_webhooks": ("Send due webhooks", 1),
}


def _enqueue(func: str, *args: object) -> None:
    transaction.on_commit(lambda: async_task(f"{TASKS}.{func}", *args, group=func))


def send_to_provider(job_ids: Iterable[int], *, claimed_at: float) -> None:
    for job_id in job_ids:
        _enqueue("send_job", job_id, claimed_at)


def check(job_id: int) -> None:
    _enqueue("check_job", job_id)


def check_after_callback(job_id: int, *, task_id: str) -> None:
    _enqueue("check_after_callback", job_id, task_id)


def stop_task(job_id: int) -> None:
    _enqueue("stop_task", job_id)


def download(job_id: int) -> None:
    _enqueue("download_job", job_id)


def start_poller() -> None:
    """Starts the poller now rather than at the next minute, unless one is running."""
    if cache.get(POLLER_LOCK) is None:
        _enqueue("poll_due_jobs")


def job_finished(job_id: int) -> None:
    """What follows a job's final move (the batch email, the low-balance check), after commit
    and in a worker, so neither ever holds up or undoes the move itself."""
    _enqueue("job_finished", job_id)


def check_low_balance(team_id: int) -> None:
    _enqueue("check_low_balance", team_id)


def deliver_webhooks(delivery_ids: list[int]) -> None:
    """Each new webhook delivery to a worker of its own, so one slow receiver holds up no
    other (`webhooks.services.announce_with`, wired in `JobsConfig.ready`)."""
    for delivery_id in delivery_ids:
        _enqueue("deliver_webhook", delivery_id)


def ensure_schedules() -> None:
    """Creates or corrects the app's schedules (run when a worker cluster starts, and by
    `manage.py ensure_schedules`); schedules of functions the app no longer has are removed."""
    for func, (name, minutes) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            func=func,
            defaults={
                "name": name,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
    Schedule.objects.filter(func__startswith=f"{TASKS}.").exclude(func__in=SCHEDULES).delete()


# --- A worker cluster ---------------------------------------------------------------------------
HEARTBEATS = "jobs:clusters"
HEARTBEAT_SECONDS = 2.0
# A cluster silent for this long is gone (killed, or its machine is).
HEARTBEAT_STALE_SECONDS = 30
# How long a cluster may go without its database before it stops.
DATABASE_GRACE_SECONDS = 5.0
_CLUSTER_PID = "UNMARK_WORKER_CLUSTER_PID"


class DatabaseUnreachable(Exception):
    pass


def run_worker() -> int:
    """Runs a worker cluster until it is stopped (SIGTERM, Ctrl-C) or loses its database;
    returns the exit status."""
    if not database_reachable():
        raise DatabaseUnreachable("The database cannot be reached; the worker does not start.")
    ensure_schedules()
    os.environ[_CLUSTER_PID] = str(os.getpid())  # inherited by its processes: see stop_cluster
    # A poller first thing, waiting out the lock of one that died with a previous cluster:
    # enqueued before the cluster starts, it is the first task a worker takes.
    async_task(f"{TASKS}.poll_due_jobs", POLLER_LOCK_SECONDS + 1, group="poll_due_jobs")
    cluster = Cluster()
    cluster.start()
    started = datetime.now(UTC)
    lost_database_at: float | None = None
    while cluster.sentinel is not None and cluster.sentinel.is_alive():
        reachable = database_reachable()
        try:
            _beat(str(cluster.cluster_id), cluster.name, started, reachable)
        except Exception:  # a heartbeat is news, never a reason to stop working
            logger.exception("worker heartbeat not recorded")
        if reachable:
            lost_database_at = None
        elif lost_database_at is None:
            lost_database_at = time.monotonic()
        elif time.monotonic() - lost_database_at > DATABASE_GRACE_SECONDS:
            logger.critical("worker stops: the database is unreachable")
            cluster.stop()
            return 1
        time.sleep(HEARTBEAT_SECONDS)
    # Stopped by a signal, or by one of its workers finding the database gone.
    return 0 if database_reachable() else 1


def database_reachable() -> bool:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        connection.close()
        return False
    return True


def needs_database[**P](task: Callable[P, Any]) -> Callable[P, Any]:
    """For task entry points: a worker that cannot reach the database hands the task back to
    the broker untouched and stops its cluster, instead of failing (and losing) it."""

    @functools.wraps(task)
    def run(*args: P.args, **kwargs: P.kwargs) -> Any:
        if database_reachable():
            return task(*args, **kwargs)
        async_task(f"{TASKS}.{task.__name__}", *args, group=task.__name__, **kwargs)
        logger.critical("task handed back: the database is unreachable", extra={"task": task})
        stop_cluster()
        return None

    return run


def stop_cluster() -> None:
    """Asks this process's cluster to stop (its main process stops it cleanly)."""
    pid = os.environ.get(_CLUSTER_PID)
    if pid:
        os.kill(int(pid), signal.SIGTERM)


def _beat(cluster_id: str, name: str, started: datetime, database: bool) -> None:
    now = datetime.now(UTC)
    beats: dict[str, dict[str, Any]] = cache.get(HEARTBEATS) or {}
    beats = {
        key: beat
        for key, beat in beats.items()
        if (now - beat["seen_at"]).total_seconds() < HEARTBEAT_STALE_SECONDS
    }
    beats[cluster_id] = {
        "name": name,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": started,
        "seen_at": now,
        "database": database,
    }
    # One key for all clusters: two writing at once may drop the other's beat for one round.
    cache.set(HEARTBEATS, beats, timeout=HEARTBEAT_STALE_SECONDS * 2)


def clusters() -> list[dict[str, Any]]:
    """Every worker cluster heard from lately: name, host, pid, seconds since its last
    heartbeat, and whether it reaches the database."""
    now = datetime.now(UTC)
    seen = []
    for beat in (cache.get(HEARTBEATS) or {}).values():
        age = (now - beat["seen_at"]).total_seconds()
        if age < HEARTBEAT_STALE_SECONDS:
            seen.append({**beat, "seconds_since_heartbeat": round(age, 1)})
    return sorted(seen, key=lambda beat: beat["started_at"])


def broker_status() -> dict[str, object]:
    """For `/healthz`: raises if the broker does not answer; how many tasks wait in it."""
    broker = get_broker()
    if not broker.ping():
        raise ConnectionError("broker did not answer")
    return {"kind": type(broker).__name__, "queued": broker.queue_size()}
