"""Uploads straight to the bucket: presigned POSTs and the check of what arrived (S3 faked by
moto at the boto3 boundary; the browser journey uses moto's real server)."""

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from apps.accounts.models import Membership
from apps.jobs.models import Upload
from tests.uploads import at, clip_bytes

BUCKET = "unmark-uploads"


@pytest.fixture
def s3(settings, files_provider, tmp_path: Path) -> Iterator[object]:
    settings.DOWNLOAD_TEMP_DIR = str(tmp_path)
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
                    "signature_version": "s3v4",
                },
            },
        }
        yield client


def presign(client, user) -> dict:
    answer = client.post(at(user, "jobs:upload_presign"))
    assert answer.status_code == 200
    return answer.json()


def key_of(post: dict) -> str:
    return post["fields"]["key"]


def test_a_presigned_post_is_capped_short_lived_and_under_the_teams_prefix(
    s3, login, alice, settings
):
    post = presign(login(alice), alice)

    team = Membership.objects.get(user=alice, team__is_personal=True).team
    assert key_of(post).startswith(f"uploads/{team.public_id}/")
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    assert ["content-length-range", 1, settings.UPLOAD_MAX_BYTES] in policy["conditions"]
    assert policy["expiration"]  # boto3 derives it from UPLOAD_PRESIGN_SECONDS


def test_the_object_that_arrived_is_measured_hashed_and_probed_before_it_is_accepted(
    s3, login, alice, tmp_path
):
    client = login(alice)
    post = presign(client, alice)
    clip = clip_bytes(tmp_path)
    s3.put_object(Bucket=BUCKET, Key=key_of(post), Body=clip)  # as the browser would

    answer = client.post(
        at(alice, "jobs:upload_confirm"), {"ticket": post["ticket"], "name": "../a\u202e.mp4"}
    )

    assert answer.status_code == 201
    upload = Upload.objects.get()
    assert (upload.file.name, upload.size) == (key_of(post), len(clip))
    assert upload.sha256 == hashlib.sha256(clip).hexdigest()
    assert upload.name == "a.mp4"
    again = client.post(at(alice, "jobs:upload_confirm"), {"ticket": post["ticket"], "name": "a"})
    assert again.json() == {"error": "This upload was already received."}


def test_a_bad_object_is_refused_and_deleted_from_the_bucket(s3, login, alice):
    client = login(alice)
    post = presign(client, alice)
    s3.put_object(Bucket=BUCKET, Key=key_of(post), Body=b"\0\0\0\x18ftypisom" + b"junk" * 100)

    answer = client.post(at(alice, "jobs:upload_confirm"), {"ticket": post["ticket"], "name": "x"})

    assert answer.status_code == 400
    assert answer.json()["error"] == "This is not a video file we can read."
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert Upload.objects.count() == 0


def test_only_keys_handed_out_to_this_team_can_be_claimed(s3, login, alice, charlie, tmp_path):
    alices = presign(login(alice), alice)
    s3.put_object(Bucket=BUCKET, Key=key_of(alices), Body=clip_bytes(tmp_path))
    client = login(charlie)

    forged = client.post(
        at(charlie, "jobs:upload_confirm"), {"ticket": key_of(alices), "name": "x"}
    )
    someone_elses = client.post(
        at(charlie, "jobs:upload_confirm"), {"ticket": alices["ticket"], "name": "x"}
    )

    assert forged.status_code == someone_elses.status_code == 400
    assert Upload.objects.count() == 0


def test_without_a_bucket_there_is_nothing_to_presign(login, alice, files_provider):
    assert login(alice).post(at(alice, "jobs:upload_presign")).status_code == 404
