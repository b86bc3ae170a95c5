"""Task entry points: each takes ids, loads fresh rows and calls the pipeline. A worker that
cannot reach the database hands the task back instead of running it (`queue.needs_database`)."""

from apps.accounts.models import Team
from apps.billing import low_balance
from apps.jobs import notifications, pipeline, queue
from apps.jobs.models import Job
from apps.webhooks import sending


def _load(job_id: int) -> Job | None:
    return Job.objects.select_related("team").filter(pk=job_id).first()


@queue.needs_database
def send_job(job_id: int, claimed_at: float | None = None) -> None:
    if job := _load(job_id):
        pipeline.send_job(job, claimed_at=claimed_at)


@queue.needs_database
def check_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.check_job(job)


@queue.needs_database
def check_after_callback(job_id: int, task_id: str) -> None:
    if job := _load(job_id):
        pipeline.adopt_task(job, task_id)


@queue.needs_database
def stop_task(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.stop_task(job)


@queue.needs_database
def download_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.download_job(job)


@queue.needs_database
def poll_due_jobs(wait_for_lock: float = 0) -> int:
    return pipeline.poll_due_jobs(wait_for_lock=wait_for_lock)


@queue.needs_database
def sweep() -> None:
    pipeline.sweep()


@queue.needs_database
def job_finished(job_id: int) -> None:
    notifications.job_finished(job_id=job_id)


@queue.needs_database
def check_low_balance(team_id: int) -> None:
    if team := Team.objects.filter(pk=team_id).first():
        low_balance.check(team=team)


@queue.needs_database
def deliver_webhook(delivery_id: int) -> None:
    sending.deliver(delivery_id=delivery_id)


@queue.needs_database
def send_due_webhooks() -> None:
    """Every minute: hands each due delivery to a worker of its own (never sends here, so a
    slow receiver cannot hold up the others), and trims old delivery logs."""
    queue.deliver_webhooks(sending.hand_out_due())
    sending.forget_old_deliveries()
