"""What a team's webhooks hear of its jobs: `job.succeeded`, `job.failed`, `batch.finished`.

The payloads carry the public shape of a job, the one the API answers with
(`apps/jobs/public.py`; documented in the README's Webhooks section): stable names, plain
words, no internal ids. They are written by `webhooks.emit` inside the
transaction of the move they announce, so they are sent once and only if it commits.
"""

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from apps.jobs.public import job_shape_json
from apps.webhooks.models import EventType
from apps.webhooks.services import emit

if TYPE_CHECKING:
    from apps.jobs.models import Job

# The endings a webhook tells of; a cancellation is the team's own doing and is not news.
JOB_EVENTS = {"succeeded": EventType.JOB_SUCCEEDED, "failed": EventType.JOB_FAILED}


def _team(job: "Job") -> dict[str, str]:
    return {"id": str(job.team.public_id), "name": job.team.name}


def job_ended(job: "Job") -> None:
    """Announces a job's success or failure (call inside the transaction of the move)."""
    if event := JOB_EVENTS.get(str(job.state)):
        emit(
            team_id=job.team_id,
            event_type=event,
            payload={"job": job_shape_json(job), "team": _team(job)},
        )


def batch_finished(*, submission_id: uuid.UUID, jobs: Sequence["Job"]) -> None:
    """Announces that every job of one submission has ended (inside the transaction that
    records it once: `BatchNotice`)."""
    succeeded = sum(job.state == "succeeded" for job in jobs)
    emit(
        team_id=jobs[0].team_id,
        event_type=EventType.BATCH_FINISHED,
        payload={
            "batch": {
                "id": str(submission_id),
                "total": len(jobs),
                "succeeded": succeeded,
                "not_succeeded": len(jobs) - succeeded,
                "jobs": [job_shape_json(job) for job in jobs],
            },
            "team": _team(jobs[0]),
        },
    )
