"""The public shape of a job (`apps/jobs/public.py`), which the API and webhooks both send."""

from apps.jobs.models import JobState
from apps.jobs.public import job_shape, job_shape_json
from tests.factories import make_job


def test_a_retried_job_names_the_job_it_retries_without_an_annotation(acme):
    earlier = make_job(acme, state=JobState.FAILED)
    retry = make_job(acme)
    retry.retry_of_id = earlier.pk
    retry.save(update_fields=["retry_of"])

    assert job_shape(retry)["retry_of"] == earlier.public_id
    assert job_shape_json(retry)["retry_of"] == str(earlier.public_id)


def test_stored_payloads_are_plain_json_written_as_the_api_writes_it(acme):
    job = make_job(acme, state=JobState.SUCCEEDED, waited=1, took=2)

    shape = job_shape_json(job)

    assert shape["id"] == str(job.public_id)
    assert shape["created_at"].endswith("Z")
    assert len(shape["created_at"]) == len("2026-12-01T17:30:12.004Z")
    assert shape["retry_of"] is None
