"""The one place that knows the task queue (django-q2): what is enqueued, what is scheduled,
and what a worker cluster does when it starts.

Everything is enqueued when the surrounding transaction commits: a worker never picks up a job
whose row it cannot see yet, and a rolled-back submission sends nothing.
"""

from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction
from django_q.models import Schedule
from django_q.tasks import async_task

TASKS = "apps.jobs.tasks"
# Held by the running poller (see pipeline.poll_due_jobs) so that only one runs at a time.
POLLER_LOCK = "jobs:poller"

# Every schedule the app needs, by function: (name, minutes between runs).
SCHEDULES = {f"{TASKS}.sweep": ("Sweep jobs", 1)}


def _enqueue(func: str, *args: object) -> None:
    transaction.on_commit(lambda: async_task(f"{TASKS}.{func}", *args, group=func))


def send_to_provider(job_ids: Iterable[int]) -> None:
    for job_id in job_ids:
        _enqueue("send_job", job_id)


def check(job_id: int) -> None:
    _enqueue("check_job", job_id)


def check_after_callback(job_id: int, *, task_id: str) -> None:
    _enqueue("check_after_callback", job_id, task_id)


def download(job_id: int) -> None:
    _enqueue("download_job", job_id)


def start_poller() -> None:
    """Starts the poller now rather than at the next minute, unless one is running."""
    if cache.get(POLLER_LOCK) is None:
        _enqueue("poll_due_jobs")


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
