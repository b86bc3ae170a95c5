"""Results in S3 (django-storages), with S3 faked by moto at the boto3 boundary."""

import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from django.core.files.storage import default_storage
from moto import mock_aws

from apps.jobs import submission
from apps.jobs.models import JobState
from apps.simulators.kie import SAMPLE_MP4
from tests.stack import SORA_LINK

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "unmark-results"


@pytest.fixture
def s3(settings, sim_stack) -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "region_name": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                    "default_acl": None,
                    "file_overwrite": False,
                    "querystring_expire": 300,
                    "signature_version": "s3v4",
                },
            },
        }
        yield client


def test_a_finished_video_lands_in_the_bucket(s3, sim_stack, alice_membership, drive):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    stored = s3.get_object(Bucket=BUCKET, Key=job.result_file.name)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == job.result_sha256  # the signed copy
    assert job.result_size == len(stored)
    assert len(stored) > len(SAMPLE_MP4.read_bytes())
    assert job.credentials is not None
    assert job.credentials["ai_generated"] is True
    assert sim_stack.stored_files() == []  # nothing went to the local disk
    assert default_storage.exists(str(job.result_file.name))


def test_download_redirects_to_a_short_lived_signed_link(
    s3, sim_stack, alice_membership, drive, login, alice
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    drive([job])
    job.refresh_from_db()

    response = login(alice).get(f"/t/{job.team.public_id}/jobs/{job.public_id}/download/")

    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["response-content-disposition"] == [f'attachment; filename="{job.download_name}"']
    assert "X-Amz-Signature" in query
    assert query["X-Amz-Expires"] == ["300"]
