"""The one module that knows the task queue (django-q2): how a task is enqueued, how schedules
are kept, and how a worker cluster runs (`manage.py worker`). Every app's `tasks.py` holds its
own entry points and enqueues them through here, so the queue library stays swappable.

Everything is enqueued when the surrounding transaction commits: a worker never picks up a task
about a row it cannot see yet, and a rolled-back change enqueues nothing. A task may also be
enqueued to run at a given moment (`enqueue_at`): the worker clusters start it within about a
second of then.

Two queues: `SENDS`, for the job pipeline's calls to providers (sends, checks, the poller that
hands them out), and the default one for everything else (emails, notifications, low-balance
checks, webhooks, downloads, removals). `manage.py worker` runs one cluster for each, with
workers of their own (`Q_SEND_WORKERS`, `Q_WORKERS`), so a send never waits in line behind a
batch of emails: under load that kept the send rate well below a provider's limit.

A worker, as it starts, checks the database, brings the schedules up to date and runs the tasks
registered to start with it (the job poller). While it runs each cluster records a heartbeat,
with whether it reaches the database, for `/healthz` and the admin; a worker that reaches the
broker but not the database hands every task it takes back to the broker and stops, rather
than swallow them.
"""

import ast
import contextlib
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.cluster import Cluster
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.tasks import async_task

logger = logging.getLogger("unmark.tasks")

# The queue of the job pipeline's calls to providers; None is the default queue.
SENDS = "sends"
# Every schedule the app needs, by the dotted path of its task: (name, minutes between runs).
# Each app adds its own when it starts (`AppConfig.ready`).
SCHEDULES: dict[str, tuple[str, int]] = {}
# Tasks enqueued when a worker starts, before its first worker process takes anything.
AT_START: list[tuple[str, tuple[object, ...], str | None]] = []
# Only schedules under this prefix are the app's: stale ones there are removed.
APP_PREFIX = "apps."


def enqueue(func: str, *args: object, queue: str | None = None) -> None:
    """Runs the task `func` (a dotted path) in a worker once the current transaction commits."""
    transaction.on_commit(lambda: _put(func, args, queue))


def enqueue_at(func: str, *args: object, at: datetime) -> None:
    """Runs the task `func` in a worker at `at` (within about a second: the workers' timer,
    `_start_due_tasks`), if the current transaction commits."""
    transaction.on_commit(
        lambda: Schedule.objects.create(
            func=func, args=repr(args), schedule_type=Schedule.ONCE, next_run=at, repeats=-1
        )
    )


def schedule(func: str, *, name: str, minutes: int) -> None:
    SCHEDULES[func] = (name, minutes)


def run_at_start(func: str, *args: object, queue: str | None = None) -> None:
    AT_START.append((func, args, queue))


def queue_names() -> list[str]:
    """The broker's name of every queue: the default one first."""
    return [Conf.PREFIX, _broker_name(SENDS)]


def _broker_name(queue: str | None) -> str:
    return f"{Conf.PREFIX}-{queue}" if queue else Conf.PREFIX


def _put(func: str, args: tuple[object, ...], queue: str | None) -> None:
    async_task(func, *args, group=func.rsplit(".", 1)[-1], cluster=_broker_name(queue))


def ensure_schedules() -> None:
    """Creates or corrects the app's schedules (run when a worker starts, and by
    `manage.py ensure_schedules`); schedules of tasks the app no longer has are removed (not
    the one-off runs of `enqueue_at`)."""
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
    Schedule.objects.filter(func__startswith=APP_PREFIX).exclude(func__in=SCHEDULES).exclude(
        schedule_type=Schedule.ONCE
    ).delete()


def _start_due_tasks() -> float:
    """Enqueues the one-off runs of `enqueue_at` that are due; returns the seconds until the
    next one (or a heartbeat's, if none is that soon). Each run is taken by deleting its row:
    of several workers, or django-q2's own (30-second) scheduler, only one wins it."""
    now = timezone.now()
    mine = Schedule.objects.filter(schedule_type=Schedule.ONCE, func__startswith=APP_PREFIX)
    for pk, func, args in mine.filter(next_run__lte=now).values_list("pk", "func", "args")[:100]:
        if Schedule.objects.filter(pk=pk).delete()[0]:
            _put(func, _literal_args(args), None)
    following = mine.filter(next_run__gt=now).order_by("next_run").values_list("next_run")[:1]
    if not following:
        return HEARTBEAT_SECONDS
    return min(HEARTBEAT_SECONDS, (following[0][0] - timezone.now()).total_seconds())


def _literal_args(text: str | None) -> tuple[object, ...]:
    value = ast.literal_eval(text) if text else ()
    return value if isinstance(value, tuple) else (value,)


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
    """Runs a worker (a cluster for each queue) until it is stopped (SIGTERM, Ctrl-C) or loses
    its database; returns the exit status."""
    if not database_reachable():
        raise DatabaseUnreachable("The database cannot be reached; the worker does not start.")
    ensure_schedules()
    os.environ[_CLUSTER_PID] = str(os.getpid())  # inherited by its processes: see stop_cluster
    # Enqueued before the clusters start, these are the first tasks their workers take.
    for func, args, queue in AT_START:
        _put(func, args, queue)
    clusters = [
        _start_cluster(None, Conf.WORKERS),
        _start_cluster(SENDS, settings.Q_SEND_WORKERS),
    ]

    def stop(signum: int, frame: FrameType | None) -> None:
        for cluster in clusters:
            cluster.stop()

    # Each Cluster took the signals for itself alone; one signal stops them all.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = datetime.now(UTC)
    lost_database_at: float | None = None
    while all(cluster.sentinel is not None and cluster.sentinel.is_alive() for cluster in clusters):
        reachable = database_reachable()
        try:
            for cluster in clusters:
                _beat(str(cluster.cluster_id), cluster.name, started, reachable)
        except Exception:  # a heartbeat is news, never a reason to stop working
            logger.exception("worker heartbeat not recorded")
        if reachable:
            lost_database_at = None
        elif lost_database_at is None:
            lost_database_at = time.monotonic()
        elif time.monotonic() - lost_database_at > DATABASE_GRACE_SECONDS:
            logger.critical("worker stops: the database is unreachable")
            stop(signal.SIGTERM, None)
            return 1
        pause = HEARTBEAT_SECONDS
        if reachable:
            try:
                pause = _start_due_tasks()
            except Exception:  # the next round tries again; the minute sweeps are the net
                logger.exception("due tasks not started")
        time.sleep(max(0.0, pause))
    # Stopped by a signal, or by one of its workers finding the database gone (or one cluster
    # died: the other stops too, and whatever supervises the worker starts it again).
    stop(signal.SIGTERM, None)
    return 0 if database_reachable() else 1


def _start_cluster(queue: str | None, workers: int) -> Cluster:
    """Starts a cluster taking tasks from `queue` with `workers` processes. django-q2 reads both
    from its settings, once per process: the cluster's processes are forked with them set for
    this cluster (so only the default queue's cluster runs the schedules, and a task handed
    back goes to the queue it came from)."""
    cluster = Cluster()
    with _conf(WORKERS=workers, CLUSTER_NAME=_broker_name(queue)):
        cluster.start()
    return cluster


@contextlib.contextmanager
def _conf(**values: object) -> Iterator[None]:
    saved = {name: getattr(Conf, name) for name in values}
    for name, value in values.items():
        setattr(Conf, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(Conf, name, value)


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
        async_task(
            f"{task.__module__}.{task.__name__}",
            *args,
            group=task.__name__,
            cluster=Conf.CLUSTER_NAME,  # this worker's queue (see _start_cluster)
            **kwargs,
        )
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
    """For `/healthz`: raises if the broker does not answer; how many tasks wait in each queue."""
    default, sends = (get_broker(name) for name in queue_names())
    if not default.ping():
        raise ConnectionError("broker did not answer")
    return {
        "kind": type(default).__name__,
        "queued": default.queue_size(),
        "queued_sends": sends.queue_size(),
    }
