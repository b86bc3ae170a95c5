"""The public shape of a job: what the API answers (`/api/v1/jobs…`, checked against its
OpenAPI schema) and what webhooks send (`job.succeeded`, `job.failed`, `batch.finished`).
One builder, so the two can never disagree. It sits in jobs: the API (above) and the webhook
events (here) both import it."""

import json
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder

if TYPE_CHECKING:
    from apps.jobs.models import Job

# What `job_shape` reads, and nothing more: a page of 50 jobs is read in one narrow query
# (with `created_by` joined and `retry_of_public_id` annotated, as the API's list does).
JOB_SHAPE_FIELDS = (
    "public_id", "team_id", "state", "input_kind", "source_url", "original_name", "provider",
    "cleaned_by", "task_id", "provider_progress", "credits", "failure_code", "failure_message",
    "result_file", "created_at", "submitted_at", "finished_at", "updated_at", "retry_of_id",
    "created_by_id", "created_by__email", "result_size", "result_sha256", "expires_at",
    "credentials",
)  # fmt: skip


def job_shape(job: "Job") -> dict[str, Any]:
    """A job as a team's own systems see it, in Python values (ids, datetimes)."""
    status = job.credits_status
    return {
        "id": job.public_id,
        "state": job.state,
        "stage": job.stage_label,
        "progress": job.progress,
        "progress_is_estimate": job.stage_is_estimate,
        "input": job.input_kind,
        "link": job.source_url or None,
        "file_name": job.original_name or None,
        # None until a provider takes it: the one it waits in line for may not be the one
        # that cleans it.
        "provider": job.taken_by,
        "created_by": job.created_by.email if job.created_by else None,
        "credits": {
            name: job.credits if status == name else 0
            for name in ("reserved", "charged", "refunded")
        },
        "failure": (
            {"code": job.failure_code, "message": job.failure_message}
            if job.failure_code or job.failure_message
            else None
        ),
        "retry_of": _retry_of(job),
        "created_at": job.created_at,
        "submitted_at": job.submitted_at,
        "finished_at": job.finished_at,
        "has_result": job.has_result,
        "content_credentials": content_credentials(job.credentials),
    }


def content_credentials(credentials: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a result's Content Credentials say, in the few facts a team's systems need."""
    if not credentials:
        return None
    return {
        "signed_by": credentials["issuer"] or credentials["signed_by"],
        "edited_by": credentials["claim_generator"],
        "ai_generated": credentials["ai_generated"],
        "watermark_removed": "c2pa.edited" in credentials["actions"],
        "original_had_credentials": credentials["original_had_credentials"],
        "trusted": credentials["validation_state"] == "Trusted",
    }


def job_shape_json(job: "Job") -> dict[str, Any]:
    """`job_shape` ready to store as JSON, written as the API writes it (Ninja's encoder is
    Django's): ids as strings, times in ISO 8601 UTC to the millisecond with `Z`."""
    shape: dict[str, Any] = json.loads(DjangoJSONEncoder().encode(job_shape(job)))
    return shape


def _retry_of(job: "Job") -> UUID | None:
    # Lists annotate the earlier job's id to save a query per row; a lone job reads it.
    if hasattr(job, "retry_of_public_id"):
        annotated: UUID | None = job.retry_of_public_id
        return annotated
    return job.retry_of.public_id if job.retry_of else None
