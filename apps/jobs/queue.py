"""The one place that talks to the task queue (django-q2), so it stays swappable.

Everything is enqueued when the surrounding transaction commits: a worker never picks up a job
whose row it cannot see yet, and a rolled-back submission sends nothing.
"""

from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction
from django_q.tasks import async_task

TASKS = "apps.jobs.tasks"
# Held by the running poller (see pipeline.poll_due_jobs) so that only one runs at a time.
POLLER_LOCK = "jobs:poller"


def _enqueue(func: str, *args: object) -> None:
    transaction.on_commit(lambda: async_task(f"{TASKS}.{func}", *args, group=func))


def send_to_provider(job_ids: Iterable[int]) -> None:
    for job_id in job_ids:
        _enqueue("send_job", job_id)


def check(job_id: int) -> None:
    _enqueue("check_job", job_id)


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
