"""The one module that knows the task queue (django-q2): how a task is enqueued, how schedules
are kept, and how a worker cluster runs (`manage.py worker`). Every app's `tasks.py` holds its
own entry points and enqueues them through here, so the queue library stays swappable.

Everything is enqueued when the surrounding transaction commits: a worker never picks up a task
about a row it cannot see yet, and a rolled-back change enqueues nothing.

A worker cluster, as it starts, checks the database, brings the schedules up to date and runs
the tasks registered to start with it (the job poller). While it runs it records a heartbeat,
with whether it reaches the database, for `/healthz` and the admin; a cluster that reaches the
broker but not the database hands every task it takes back to the broker and stops, rather
than swallow them.
"""

import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django_q.brokers import get_broker
from django_q.cluster import Cluster
from django_q.models import Schedule
from django_q.tasks import async_task

logger = logging.getLogger("unmark.tasks")

# Every schedule the app needs, by the dotted path of its task: (name, minutes between runs).
# Each app adds its own when it starts (`AppConfig.ready`).
SCHEDULES: dict[str, tuple[str, int]] = {}
# Tasks enqueued when a worker cluster starts, before its first worker takes anything.
AT_START: list[tuple[str, tuple[object, ...]]] = []
# Only schedules under this prefix are the app's: stale ones there are removed.
APP_PREFIX = "apps."


def enqueue(func: str, *args: object) -> None:
    """Runs the task `func` (a dotted path) in a worker once the current transaction commits."""
    transaction.on_commit(lambda: async_task(func, *args, group=func.rsplit(".", 1)[-1]))


def schedule(func: str, *, name: str, minutes: int) -> None:
    SCHEDULES[func] = (name, minutes)


def run_at_start(func: str, *args: object) -> None:
    AT_START.append((func, args))


def ensure_schedules() -> None:
    """Creates or corrects the app's schedules (run when a worker cluster starts, and by
    `manage.py ensure_schedules`); schedules of tasks the app no longer has are removed."""
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
    Schedule.objects.filter(func__startswith=APP_PREFIX).exclude(func__in=SCHEDULES).delete()


# --- A worker cluster ---------------------------------------------------------------------------
HEARTBEATS = "tasks:clusters"
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
    # Enqueued before the cluster starts, these are the first tasks its workers take.
    for func, args in AT_START:
        async_task(func, *args, group=func.rsplit(".", 1)[-1])
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
        async_task(f"{task.__module__}.{task.__name__}", *args, group=task.__name__, **kwargs)
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
