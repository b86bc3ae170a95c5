"""Task entry points of the job pipeline: each takes ids, loads fresh rows and calls the
pipeline. A worker that cannot reach the database hands the task back instead of running it
(`taskqueue.needs_database`)."""

from apps.jobs import dispatcher, notifications, pipeline
from apps.jobs.models import Job
from apps.taskqueue import needs_database


def _load(job_id: int) -> Job | None:
    return Job.objects.select_related("team").filter(pk=job_id).first()


@needs_database
def send_job(job_id: int, claimed_at: float | None = None) -> None:
    if job := _load(job_id):
        pipeline.send_job(job, claimed_at=claimed_at)


@needs_database
def check_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.check_job(job)


@needs_database
def check_after_callback(job_id: int, task_id: str) -> None:
    if job := _load(job_id):
        pipeline.adopt_task(job, task_id)


@needs_database
def stop_task(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.stop_task(job)


@needs_database
def download_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.download_job(job)


@needs_database
def poll_due_jobs(wait_for_lock: float = 0) -> int:
    return dispatcher.poll_due_jobs(wait_for_lock=wait_for_lock)


@needs_database
def sweep() -> None:
    dispatcher.sweep()


@needs_database
def job_finished(job_id: int) -> None:
    notifications.job_finished(job_id=job_id)
