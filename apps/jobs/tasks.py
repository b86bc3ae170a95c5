"""django-q2 task entry points: each takes ids, loads fresh rows and calls the pipeline."""

from apps.accounts.models import Team
from apps.billing import low_balance
from apps.jobs import notifications, pipeline
from apps.jobs.models import Job


def _load(job_id: int) -> Job | None:
    return Job.objects.select_related("team").filter(pk=job_id).first()


def send_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.send_job(job)


def check_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.check_job(job)


def download_job(job_id: int) -> None:
    if job := _load(job_id):
        pipeline.download_job(job)


def poll_due_jobs() -> int:
    return pipeline.poll_due_jobs()


def sweep() -> None:
    pipeline.sweep()


def job_finished(job_id: int) -> None:
    notifications.job_finished(job_id=job_id)


def check_low_balance(team_id: int) -> None:
    if team := Team.objects.filter(pk=team_id).first():
        low_balance.check(team=team)
