"""The job steps a worker runs, enqueued by name (through `apps.taskqueue`, on commit).

The dispatcher (`pipeline.poll_due_jobs`) hands out sends, checks and saves here; a callback
enqueues the status query it triggers. Only one poller runs at a time: it holds `POLLER_LOCK`.
Sends, checks and the poller go to the queue of their own (`taskqueue.SENDS`): a provider's
create limit is used to the full only if a send never waits behind emails and webhooks.
Saving a result (a long transfer) and everything else use the default queue.
"""

from collections.abc import Iterable

from django.core.cache import cache

from apps import taskqueue

TASKS = "apps.jobs.tasks"
# Held by the running poller (see pipeline.poll_due_jobs) so that only one runs at a time;
# short, and renewed every round: after a crash, a new poller takes over within seconds.
POLLER_LOCK = "jobs:poller"
POLLER_LOCK_SECONDS = 4


def _enqueue(step: str, *args: object, queue: str | None = None) -> None:
    taskqueue.enqueue(f"{TASKS}.{step}", *args, queue=queue)


def send_to_provider(job_ids: Iterable[int], *, claimed_at: float) -> None:
    for job_id in job_ids:
        _enqueue("send_job", job_id, claimed_at, queue=taskqueue.SENDS)


def check(job_id: int) -> None:
    _enqueue("check_job", job_id, queue=taskqueue.SENDS)


def check_after_callback(job_id: int, *, task_id: str) -> None:
    _enqueue("check_after_callback", job_id, task_id, queue=taskqueue.SENDS)


def stop_task(job_id: int) -> None:
    _enqueue("stop_task", job_id)


def download(job_id: int) -> None:
    _enqueue("download_job", job_id)


def start_poller() -> None:
    """Starts the poller now rather than at the next minute, unless one is running."""
    if cache.get(POLLER_LOCK) is None:
        _enqueue("poll_due_jobs", queue=taskqueue.SENDS)


def job_finished(job_id: int) -> None:
    """What follows a job's end (the batch email, the low-balance check), after commit and in
    a worker, so neither ever holds up or undoes the move itself."""
    _enqueue("job_finished", job_id)
