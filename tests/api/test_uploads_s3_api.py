"""The upload URL flow with S3 storage: a presigned POST straight to the bucket, then the
API checks what arrived (S3 faked by moto at the boto3 boundary)."""

from apps.billing import ledger
from apps.jobs import lifecycle
from apps.jobs.models import Job, Upload
from tests.api.test_jobs_api import fund
from tests.jobs.test_uploads_s3 import BUCKET, s3  # noqa: F401  # the moto bucket fixture
from tests.uploads import clip_bytes


def test_a_large_file_goes_to_the_bucket_and_is_checked_before_its_job(
    s3,  # noqa: F811
    acme,
    acme_api,
    tmp_path,
):
    fund(acme, 100)

    ticket = acme_api.post("/uploads").json()
    key = ticket["fields"]["key"]
    assert key.startswith(f"uploads/{acme.public_id}/")
    assert ticket["confirm_url"].endswith("/api/v1/uploads/confirm")
    s3.put_object(Bucket=BUCKET, Key=key, Body=clip_bytes(tmp_path))  # as the client would
    confirmed = acme_api.post(
        "/uploads/confirm", {"ticket": ticket["ticket"], "name": "big export.mp4"}
    )
    created = acme_api.post("/jobs", {"uploads": [confirmed.json()["id"]]})

    assert confirmed.status_code == 201, confirmed.content
    assert created.status_code == 201
    [job] = Job.objects.filter(team=acme)
    assert (job.original_file.name, job.original_name) == (key, "big export.mp4")
    assert Upload.objects.count() == 0
    assert ledger.open_wallet(acme).held == 10


def test_a_ticket_whose_file_never_arrived_is_refused(s3, acme, acme_api):  # noqa: F811
    ticket = acme_api.post("/uploads").json()

    response = acme_api.post("/uploads/confirm", {"ticket": ticket["ticket"], "name": "a.mp4"})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"item": "file", "message": "The file did not arrive. Please upload it again."}
    ]
    assert Upload.objects.count() == 0


def test_a_file_confirmed_once_files_are_no_longer_accepted_is_refused_like_on_the_web(
    s3,  # noqa: F811
    acme,
    acme_api,
    alice,
    login,
    settings,
    tmp_path,
):
    ticket = acme_api.post("/uploads").json()
    s3.put_object(Bucket=BUCKET, Key=ticket["fields"]["key"], Body=clip_bytes(tmp_path))
    # The services that take files go away meanwhile: the pool, our own remover (switched off)
    # and Replicate (not set up).
    settings.SWC_SERVERS = []
    settings.REMOVER_PROCESSES = 0
    settings.REPLICATE_API_TOKEN = ""

    response = acme_api.post("/uploads/confirm", {"ticket": ticket["ticket"], "name": "a.mp4"})
    on_the_web = login(alice).post(
        f"/t/{acme.public_id}/uploads/confirm/", {"ticket": ticket["ticket"], "name": "a.mp4"}
    )

    assert response.status_code == on_the_web.status_code == 409
    assert response.json()["type"] == "urn:unmark:problem:files-not-accepted"
    assert response.json()["detail"] == on_the_web.json()["error"]
    assert Upload.objects.count() == 0


def test_another_teams_ticket_cannot_be_claimed(s3, acme, acme_api, charlie, tmp_path):  # noqa: F811
    from apps.jobs.uploads import presigned_post

    theirs = presigned_post(team=charlie.memberships.get().team)
    s3.put_object(Bucket=BUCKET, Key=theirs["fields"]["key"], Body=clip_bytes(tmp_path))  # type: ignore[index]

    response = acme_api.post("/uploads/confirm", {"ticket": theirs["ticket"], "name": "x.mp4"})

    assert response.status_code == 422
    assert Upload.objects.count() == 0


def test_a_result_link_redirects_to_a_short_lived_signed_bucket_link(s3, acme, acme_api):  # noqa: F811
    from django.test import Client

    from apps.jobs.models import JobState

    fund(acme, 100)
    job_id = acme_api.post(
        "/jobs", {"links": ["https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"]}
    ).json()["jobs"][0]["id"]
    s3.put_object(Bucket=BUCKET, Key="results/clean.mp4", Body=b"clean")
    job = Job.objects.get(public_id=job_id)
    job.move(JobState.SUBMITTED)
    job.move(JobState.DOWNLOADING)
    lifecycle.succeed_job(job, name="results/clean.mp4", size=5, sha256="ab" * 32)

    url = acme_api.get(f"/jobs/{job_id}").json()["result"]["url"]
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(f"https://{BUCKET}.s3.amazonaws.com/results/clean.mp4?")
    assert "X-Amz-Signature=" in response["Location"]
    assert "attachment" in response["Location"]
