"""Files through the API: small ones in the job request (multipart), large ones by the upload
URL flow (ask, upload, create). Checked like the dashboard's, and a refusal keeps nothing."""

from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.billing import ledger
from apps.jobs.models import Job, Upload
from apps.removal.base import InputKind
from tests.api.conftest import ApiClient, key_for
from tests.api.test_jobs_api import fund
from tests.uploads import clip_bytes, png_bytes, video_file


def stored_files(media: Path) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def test_small_files_become_file_jobs_in_one_request(acme, acme_api, uploads_stack, tmp_path):
    fund(acme, 100)
    files = [
        video_file("one.mp4", clip_bytes(tmp_path)),
        video_file("two.mp4", clip_bytes(tmp_path, seconds=2)),
    ]

    response = acme_api.post_files("/jobs/files", {"files": files})

    assert response.status_code == 201, response.content
    body = response.json()
    assert [job["file_name"] for job in body["jobs"]] == ["one.mp4", "two.mp4"]
    assert {job["input"] for job in body["jobs"]} == {"file"}
    assert Job.objects.filter(team=acme, input_kind=InputKind.FILE).count() == 2
    assert Upload.objects.count() == 0  # used up by the jobs
    assert ledger.open_wallet(acme).held == 20


def test_a_refused_file_refuses_the_request_and_keeps_nothing(
    acme, acme_api, uploads_stack, tmp_path
):
    fund(acme, 100)
    files = [
        video_file("good.mp4", clip_bytes(tmp_path)),
        SimpleUploadedFile("picture.mp4", png_bytes(), content_type="video/mp4"),
    ]

    response = acme_api.post_files("/jobs/files", {"files": files})

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["item"] == "files[1]"
    assert error["message"].startswith("picture.mp4: ")
    assert Job.objects.count() == Upload.objects.count() == 0
    assert stored_files(uploads_stack) == []
    assert ledger.open_wallet(acme).held == 0


def test_too_few_credits_for_files_keep_nothing(acme, acme_api, uploads_stack, tmp_path):
    fund(acme, 5)

    response = acme_api.post_files(
        "/jobs/files", {"files": [video_file("one.mp4", clip_bytes(tmp_path))]}
    )

    assert response.status_code == 402
    assert Job.objects.count() == Upload.objects.count() == 0
    assert stored_files(uploads_stack) == []


def test_the_same_file_twice_is_cleaned_once(acme, acme_api, uploads_stack, tmp_path):
    fund(acme, 100)
    data = clip_bytes(tmp_path)

    body = acme_api.post_files(
        "/jobs/files", {"files": [video_file("a.mp4", data), video_file("b.mp4", data)]}
    ).json()

    assert len(body["jobs"]) == 1
    assert body["duplicates"] == [
        {"item": "files[1]", "message": "The same video as a.mp4: it is cleaned once."}
    ]
    assert Upload.objects.count() == 0


def test_a_file_over_the_size_cap_is_stopped_while_it_arrives(
    acme, acme_api, uploads_stack, tmp_path, settings
):
    fund(acme, 100)
    settings.UPLOAD_MAX_BYTES = 1000

    response = acme_api.post_files(
        "/jobs/files", {"files": [video_file("big.mp4", clip_bytes(tmp_path))]}
    )

    assert response.status_code == 413
    assert "larger than the 1,000 bytes we accept" in response.json()["detail"]
    assert Job.objects.count() == Upload.objects.count() == 0


def test_the_upload_url_flow_ask_upload_create(acme, alice, uploads_stack, tmp_path):
    fund(acme, 100)
    api = ApiClient(key_for(alice, acme))

    ticket = api.post("/uploads").json()
    assert ticket["confirm_url"] is None
    # The upload URL needs no API key: the signed ticket in its fields stands in for it.
    uploaded = ApiClient("").client.post(
        ticket["url"],
        {**ticket["fields"], ticket["file_field"]: video_file("long.mp4", clip_bytes(tmp_path))},
    )
    assert uploaded.status_code == 201, uploaded.content
    upload_id = uploaded.json()["id"]
    created = api.post("/jobs", {"uploads": [upload_id]})

    assert created.status_code == 201
    [job] = created.json()["jobs"]
    assert job["file_name"] == "long.mp4"
    assert Upload.objects.count() == 0
    assert ledger.open_wallet(acme).held == 10


def test_a_forged_or_revoked_upload_ticket_is_refused(acme, alice, uploads_stack, tmp_path):
    from apps.api.keys import revoke_key
    from apps.api.models import ApiKey

    api = ApiClient(key_for(alice, acme))
    ticket = api.post("/uploads").json()
    url = ticket["url"]
    anyone = ApiClient("").client

    forged = anyone.post(url, {"ticket": "1:forged", "file": video_file("a.mp4", b"x")})
    revoke_key(key=ApiKey.objects.get(), actor=alice)
    revoked = anyone.post(
        url, {**ticket["fields"], "file": video_file("a.mp4", clip_bytes(tmp_path))}
    )

    assert forged.status_code == revoked.status_code == 403
    assert revoked.json()["type"] == "urn:unmark:problem:invalid-ticket"
    assert Upload.objects.count() == 0


def test_an_upload_ticket_carries_one_file_only(acme, alice, uploads_stack, tmp_path):
    api = ApiClient(key_for(alice, acme))
    ticket = api.post("/uploads").json()
    anyone = ApiClient("").client

    first = anyone.post(
        ticket["url"], {**ticket["fields"], "file": video_file("a.mp4", clip_bytes(tmp_path))}
    )
    kept = stored_files(uploads_stack)
    again = anyone.post(
        ticket["url"], {**ticket["fields"], "file": video_file("b.mp4", clip_bytes(tmp_path))}
    )

    assert first.status_code == 201
    assert again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"
    assert again.json()["type"] == "urn:unmark:problem:ticket-used"
    assert list(Upload.objects.values_list("name", flat=True)) == ["a.mp4"]
    assert stored_files(uploads_stack) == kept


def test_a_refused_file_leaves_its_ticket_for_a_good_one(acme, alice, uploads_stack, tmp_path):
    ticket = ApiClient(key_for(alice, acme)).post("/uploads").json()
    anyone = ApiClient("").client

    refused = anyone.post(
        ticket["url"], {**ticket["fields"], "file": video_file("a.png", png_bytes())}
    )
    accepted = anyone.post(
        ticket["url"], {**ticket["fields"], "file": video_file("a.mp4", clip_bytes(tmp_path))}
    )

    assert (refused.status_code, accepted.status_code) == (422, 201)
    assert Upload.objects.count() == 1


def test_uploads_on_a_ticket_count_against_the_keys_rate_limit(
    acme, alice, uploads_stack, tmp_path, settings
):
    settings.API_RATE_PER_MINUTE = 2
    api = ApiClient(key_for(alice, acme))
    tickets = [api.post("/uploads").json() for _ in range(2)]  # the minute's two requests

    limited = ApiClient("").client.post(
        tickets[0]["url"],
        {**tickets[0]["fields"], "file": video_file("a.mp4", clip_bytes(tmp_path))},
    )

    assert limited.status_code == 429
    assert limited.json()["type"] == "urn:unmark:problem:rate-limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert Upload.objects.count() == 0
    assert stored_files(uploads_stack) == []


def test_without_a_provider_for_files_uploads_are_refused_at_once(acme, acme_api, settings):
    settings.SWC_SERVERS = []
    settings.REMOVER_PROCESSES = 0  # our own remover switched off for files
    settings.REPLICATE_API_TOKEN = ""  # Replicate is optional capacity: not set up either

    response = acme_api.post("/uploads")

    assert response.status_code == 409
    assert response.json()["type"] == "urn:unmark:problem:files-not-accepted"


def test_one_file_too_many_stops_the_request(acme, acme_api, uploads_stack, tmp_path, settings):
    fund(acme, 100)
    settings.UPLOAD_MAX_FILES = 1
    data = clip_bytes(tmp_path)

    response = acme_api.post_files(
        "/jobs/files", {"files": [video_file("a.mp4", data), video_file("b.mp4", data)]}
    )

    assert response.status_code == 413
    assert response.json()["detail"].startswith("Up to 1 files can be sent at once")
    assert Job.objects.count() == Upload.objects.count() == 0


def test_files_sent_twice_with_one_idempotency_key_make_their_jobs_once(
    acme, acme_api, uploads_stack, tmp_path
):
    fund(acme, 100)
    data = clip_bytes(tmp_path)
    send = lambda content: acme_api.post_files(  # noqa: E731
        "/jobs/files",
        {"files": [video_file("a.mp4", content)]},
        headers={"Idempotency-Key": "files-1"},
    )

    first, again = send(data), send(data)
    other = send(clip_bytes(tmp_path, seconds=2))

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert other.status_code == 422  # another file under the same key
    assert Job.objects.count() == 1
    assert ledger.open_wallet(acme).held == 10
    job = Job.objects.get()
    kept = [str(job.original_file.name), str(job.original_poster.name)]
    assert stored_files(uploads_stack) == sorted(kept)


def test_files_stored_by_a_request_that_rolled_back_are_deleted(
    acme, acme_api, uploads_stack, tmp_path, monkeypatch
):
    from django.http import HttpResponse

    from apps.api import guard

    fund(acme, 100)
    respond_once = guard.idempotency.respond_once

    def work_then_fail(request, *, team_id, run):
        def failing():
            run()  # the files are stored and their jobs made…
            return HttpResponse(status=502)  # …then the request fails and rolls back

        return respond_once(request, team_id=team_id, run=failing)

    monkeypatch.setattr(guard.idempotency, "respond_once", work_then_fail)
    response = acme_api.post_files(
        "/jobs/files",
        {"files": [video_file("one.mp4", clip_bytes(tmp_path))]},
        headers={"Idempotency-Key": "flaky"},
    )

    assert response.status_code == 502
    assert Job.objects.count() == Upload.objects.count() == 0
    assert stored_files(uploads_stack) == []
