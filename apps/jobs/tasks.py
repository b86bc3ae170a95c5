"""django-q2 task entry points: each takes ids, loads fresh rows and calls the pipeline."""

from apps.jobs import pipeline
from apps.jobs.models import Job


def _load(job_id: int) -> Job | None:
    return Job.objects.select_related("team").filter(pk=job_id).first()


def send_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.send_job(job)


def check_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.check_job(job)


def check_after_callback(job_id: int, task_id: str) -> None:
    if job := _load(job_id):
        pipeline.adopt_task(job, task_id)


def download_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.download_job(job)


def poll_due_jobs(wait_for_lock: float = 0) -> int:
    return pipeline.poll_due_jobs(wait_for_lock=wait_for_lock)


def sweep() -> None:
    pipeline.sweep()
