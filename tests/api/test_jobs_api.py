"""Jobs and credits through the API: the web's rules (holds all or nothing, limits, per-item
messages), a key sees only its own team, and refusals leave nothing behind."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.accounts.models import Team
from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry
from apps.jobs import lifecycle
from apps.jobs.links import check_share_link
from apps.jobs.models import Job, JobState
from apps.removal.models import ProviderAlert
from tests.api.conftest import GOOD_LINK, OTHER_LINK, ApiClient, key_for, link, membership
from tests.factories import UserFactory


def fund(team: Team, credits: int) -> None:
    ledger.grant(team=team, credits=credits, key=f"test-grant:{team.pk}:{credits}", memo="Test")


def make_jobs(team: Team, user, count: int, **fields) -> list[Job]:
    now = timezone.now()
    jobs = [
        Job(
            team=team,
            created_by=user,
            source_url=link(i),
            provider="kie",
            credits=10,
            state=fields.get("state", JobState.SUCCEEDED),
        )
        for i in range(count)
    ]
    made = Job.objects.bulk_create(jobs)
    # Distinct creation times, oldest first, like jobs made one after another.
    for offset, job in enumerate(made):
        Job.objects.filter(pk=job.pk).update(created_at=now - timedelta(minutes=count - offset))
    return made


# --- Creating -----------------------------------------------------------------------------------
def test_links_become_jobs_holding_ten_credits_each(acme, alice, acme_api):
    fund(acme, 100)

    response = acme_api.post("/jobs", {"links": [GOOD_LINK, OTHER_LINK]})

    assert response.status_code == 201
    body = response.json()
    assert [job["link"] for job in body["jobs"]] == [GOOD_LINK, OTHER_LINK]
    assert body["jobs"][0]["state"] == "queued"
    assert body["jobs"][0]["stage"] == "Waiting"
    assert body["jobs"][0]["credits"] == {"reserved": 10, "charged": 0, "refunded": 0}
    assert body["jobs"][0]["created_by"] == "alice@example.com"
    jobs = Job.objects.filter(team=acme)
    assert jobs.count() == 2
    assert {job.created_by for job in jobs} == {alice}
    wallet = ledger.open_wallet(acme)
    assert (wallet.balance, wallet.held) == (100, 20)


def test_one_bad_link_refuses_the_request_with_the_dashboards_message(acme, acme_api):
    fund(acme, 100)
    draft = "https://sora.chatgpt.com/d/gen_01abc"

    response = acme_api.post("/jobs", {"links": [GOOD_LINK, draft]})

    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:unmark:problem:invalid-items"
    assert problem["errors"] == [{"item": "links[1]", "message": check_share_link(draft)[1]}]
    assert "draft link" in problem["errors"][0]["message"]
    assert Job.objects.count() == 0
    assert ledger.open_wallet(acme).held == 0


def test_a_null_character_is_refused_as_the_form_refuses_it(acme, acme_api):
    fund(acme, 100)

    response = acme_api.post("/jobs", {"links": [f"{GOOD_LINK}?a=\x00"]})
    member = acme_api.get("/jobs", member="a\x00b")

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"item": "links[0]", "message": "Null characters are not allowed."}
    ]
    assert member.status_code == 422
    assert Job.objects.count() == 0


def test_a_repeated_link_is_sent_once_and_named(acme, acme_api):
    fund(acme, 100)

    body = acme_api.post("/jobs", {"links": [GOOD_LINK, GOOD_LINK]}).json()

    assert len(body["jobs"]) == 1
    assert body["duplicates"] == [
        {"item": "links[1]", "message": "The same video as links[0]: it is sent once."}
    ]
    assert ledger.open_wallet(acme).held == 10


def test_too_few_credits_create_nothing_and_say_how_many_are_missing(acme, acme_api):
    fund(acme, 15)

    response = acme_api.post("/jobs", {"links": [GOOD_LINK, OTHER_LINK]})

    assert response.status_code == 402
    problem = response.json()
    assert problem["type"] == "urn:unmark:problem:insufficient-credits"
    assert problem["detail"] == (
        "2 videos need 20 credits, but your team has 15 credits available: 5 more credits are "
        "needed. Nothing was submitted."
    )
    assert (problem["needed"], problem["available"]) == (20, 15)
    assert Job.objects.count() == 0
    assert ledger.open_wallet(acme).held == 0


def test_the_makers_monthly_limit_applies_to_their_key(acme, alice, acme_api):
    fund(acme, 1000)
    owner = membership(alice, acme)
    owner.monthly_credit_limit = 10
    owner.save()

    response = acme_api.post("/jobs", {"links": [GOOD_LINK, OTHER_LINK]})

    assert response.status_code == 403
    assert response.json()["type"] == "urn:unmark:problem:monthly-limit-reached"
    assert "you can use 10 more credits (1 video) this month" in response.json()["detail"]
    assert Job.objects.count() == 0


def test_a_link_already_cleaned_is_set_aside_unless_asked_again(acme, alice, acme_api):
    fund(acme, 100)
    [done] = make_jobs(acme, alice, 1)
    Job.objects.filter(pk=done.pk).update(source_url=GOOD_LINK, result_file="results/a.mp4")

    aside = acme_api.post("/jobs", {"links": [GOOD_LINK]})
    again = acme_api.post("/jobs", {"links": [GOOD_LINK], "again": True})

    assert aside.status_code == 200
    assert aside.json()["jobs"] == []
    assert aside.json()["already_cleaned"] == [
        {"item": "links[0]", "job": str(done.public_id), "upload": None}
    ]
    assert again.status_code == 201
    assert ledger.open_wallet(acme).held == 10


def test_the_api_sets_a_running_link_aside_too(acme, alice, acme_api):
    fund(acme, 100)
    first = acme_api.post("/jobs", {"links": [GOOD_LINK]})
    [running] = first.json()["jobs"]

    again = acme_api.post("/jobs", {"links": [GOOD_LINK + "/#x"]})

    assert again.status_code == 200
    assert again.json()["already_cleaned"] == [
        {"item": "links[0]", "job": running["id"], "upload": None}
    ]
    assert ledger.open_wallet(acme).held == 10


def test_a_link_is_refused_as_a_problem_while_kie_is_paused(acme, acme_api):
    fund(acme, 100)
    checked = timezone.now().replace(hour=13, minute=10)
    ProviderAlert.objects.create(
        provider="kie", kind="paused", message="500: paused", last_seen_at=checked
    )

    response = acme_api.post("/jobs", {"links": [GOOD_LINK]})

    assert response.status_code == 503
    assert response.json()["type"] == "urn:unmark:problem:provider-paused"
    assert response.json()["detail"] == (
        "Links cannot be cleaned right now: our link provider has paused Sora watermark "
        "removal (last checked 13:10). Upload the video file instead."
    )
    assert Job.objects.count() == 0
    assert ledger.open_wallet(acme).held == 0


def test_an_empty_request_is_refused(acme, acme_api):
    response = acme_api.post("/jobs", {})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"item": "request", "message": "Send video files, or Sora share links."}
    ]


def test_a_malformed_body_is_a_problem_with_the_field_named(acme, acme_api):
    response = acme_api.post("/jobs", {"links": "not a list"})

    assert response.status_code == 422
    assert response.json()["type"] == "urn:unmark:problem:invalid-request"
    assert response.json()["errors"][0]["item"] == "body.links"


def test_the_schema_names_every_job_state():
    from typing import get_args

    from apps.api.schemas import State

    assert set(get_args(State)) == set(JobState.values)


# --- Reading ------------------------------------------------------------------------------------
def test_jobs_are_listed_newest_first_in_pages_by_cursor(acme, alice, acme_api):
    jobs = make_jobs(acme, alice, 5)

    first = acme_api.get("/jobs", limit=2).json()
    second = acme_api.get("/jobs", limit=2, cursor=first["next_cursor"]).json()
    third = acme_api.get("/jobs", limit=2, cursor=second["next_cursor"]).json()

    newest_first = [str(job.public_id) for job in reversed(jobs)]
    seen = [job["id"] for page in (first, second, third) for job in page["data"]]
    assert seen == newest_first
    assert third["next_cursor"] is None


def test_a_page_of_jobs_is_read_in_a_fixed_number_of_queries(
    acme, alice, acme_api, django_assert_max_num_queries
):
    make_jobs(acme, alice, 60)
    acme_api.get("/jobs")  # the key's last use is recorded once a minute, not on every call

    # The key, its maker's membership, the page; the rest is the rate counter in the database
    # cache (one round trip to Redis in production). None per job.
    with django_assert_max_num_queries(16):
        page = acme_api.get("/jobs", limit=50).json()

    assert len(page["data"]) == 50


def test_jobs_are_filtered_by_state_date_and_member(acme, alice, carol, acme_api):
    make_jobs(acme, alice, 3)
    [carols] = make_jobs(acme, carol, 1, state=JobState.FAILED)
    [old] = make_jobs(acme, alice, 1)
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    since = (timezone.now() - timedelta(days=30)).isoformat()

    by_state = acme_api.get("/jobs", state="failed").json()["data"]
    by_member = acme_api.get("/jobs", member="CAROL@example.com").json()["data"]
    recent = acme_api.get("/jobs", created_after=since).json()["data"]

    assert [job["id"] for job in by_state] == [str(carols.public_id)]
    assert [job["id"] for job in by_member] == [str(carols.public_id)]
    assert len(recent) == 4
    assert str(old.public_id) not in {job["id"] for job in recent}


def test_a_date_without_an_offset_is_read_as_utc(acme, alice, acme_api):
    [job] = make_jobs(acme, alice, 1)
    Job.objects.filter(pk=job.pk).update(created_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))

    before = acme_api.get("/jobs", created_before="2026-05-01T12:00:01").json()["data"]
    after = acme_api.get("/jobs", created_after="2026-05-01T12:00:01").json()["data"]

    assert [j["id"] for j in before] == [str(job.public_id)]
    assert after == []


def test_dates_with_any_valid_offset_are_read_in_utc(acme, alice, acme_api):
    # ISO 8601 allows offsets the database refuses (over ±15:59): found by schemathesis.
    make_jobs(acme, alice, 1)

    far = acme_api.get("/jobs", created_before="1389-01-02T22:56:09+20:29")
    edge = acme_api.get("/jobs", created_after="0001-01-01T00:00:00+20:00")

    assert far.status_code == 200
    assert far.json()["data"] == []
    assert edge.status_code == 400
    assert edge.json()["type"] == "urn:unmark:problem:invalid-date"


@pytest.mark.parametrize(
    "raw", ["not-a-cursor", "2026-12-01T00:00:00+00:00|99999999999999999999", "2026-12-01|x"]
)
def test_a_tampered_cursor_is_refused(acme, acme_api, raw):
    import base64

    cursor = raw if "|" not in raw else base64.urlsafe_b64encode(raw.encode()).decode()

    for path in ("/jobs", "/credits"):
        response = acme_api.get(path, cursor=cursor)
        assert response.status_code == 400
        assert response.json()["type"] == "urn:unmark:problem:invalid-cursor"


def test_one_job_shows_its_timeline_credits_and_a_signed_result_link(
    acme, alice, acme_api, media_storage
):
    fund(acme, 100)
    job_id = acme_api.post("/jobs", {"links": [GOOD_LINK]}).json()["jobs"][0]["id"]
    job = Job.objects.get(public_id=job_id)
    name = default_storage.save("results/clean.mp4", ContentFile(b"clean video bytes"))
    job.move(JobState.SUBMITTED)
    job.move(JobState.DOWNLOADING)
    lifecycle.succeed_job(job, name=name, size=17, sha256="ab" * 32)

    body = acme_api.get(f"/jobs/{job_id}").json()

    assert body["state"] == "succeeded"
    assert body["stage"] == "Done"
    assert body["progress"] == 100
    assert body["credits"] == {"reserved": 0, "charged": 10, "refunded": 0}
    assert [step["to_state"] for step in body["timeline"]] == [
        "queued",
        "submitted",
        "downloading",
        "succeeded",
    ]
    assert body["result"]["size"] == 17
    download = ApiClient("no key at all").client.get(body["result"]["url"])
    assert download.status_code == 200
    assert download.getvalue() == b"clean video bytes"
    assert "attachment" in download["Content-Disposition"]


def test_a_result_link_stops_working_after_its_time(acme, alice, acme_api, settings, media_storage):
    fund(acme, 100)
    job_id = acme_api.post("/jobs", {"links": [GOOD_LINK]}).json()["jobs"][0]["id"]
    job = Job.objects.get(public_id=job_id)
    name = default_storage.save("results/clean.mp4", ContentFile(b"clean"))
    job.move(JobState.SUBMITTED)
    job.move(JobState.DOWNLOADING)
    lifecycle.succeed_job(job, name=name, size=5, sha256="ab" * 32)
    url = acme_api.get(f"/jobs/{job_id}").json()["result"]["url"]

    settings.API_RESULT_URL_SECONDS = -1

    response = ApiClient("none").client.get(url)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_canceling_a_waiting_job_refunds_it(acme, acme_api):
    fund(acme, 100)
    job_id = acme_api.post("/jobs", {"links": [GOOD_LINK]}).json()["jobs"][0]["id"]

    response = acme_api.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["state"] == "canceled"
    assert response.json()["credits"] == {"reserved": 0, "charged": 0, "refunded": 10}
    assert ledger.open_wallet(acme).held == 0


def test_a_job_already_sent_cannot_be_canceled_and_says_why(acme, acme_api):
    fund(acme, 100)
    job_id = acme_api.post("/jobs", {"links": [GOOD_LINK]}).json()["jobs"][0]["id"]
    Job.objects.get(public_id=job_id).move(JobState.SUBMITTED)

    response = acme_api.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 409
    assert response.json()["type"] == "urn:unmark:problem:not-cancelable"
    assert "can no longer be canceled" in response.json()["detail"]
    assert ledger.open_wallet(acme).held == 10


def test_the_balance_shows_available_and_reserved(acme, acme_api):
    fund(acme, 100)
    acme_api.post("/jobs", {"links": [GOOD_LINK]})

    assert acme_api.get("/balance").json() == {
        "available": 90,
        "reserved": 10,
        "balance": 100,
        "frozen": False,
        "credits_per_video": 10,
    }


def test_the_credit_history_lists_every_entry_newest_first(acme, acme_api):
    fund(acme, 100)
    job_id = acme_api.post("/jobs", {"links": [GOOD_LINK]}).json()["jobs"][0]["id"]
    acme_api.post(f"/jobs/{job_id}/cancel")

    history = acme_api.get("/credits").json()

    assert [(e["kind"], e["amount"], e["available_change"]) for e in history["data"]] == [
        ("release", -10, 10),
        ("hold", 10, -10),
        ("grant", 100, 100),
    ]
    assert history["data"][0]["job"] == job_id
    assert LedgerEntry.objects.filter(team=acme, kind=EntryKind.HOLD).count() == 1


# --- Another team's things ----------------------------------------------------------------------
@pytest.fixture
def charlies_job(charlie) -> Job:
    team = membership(charlie, charlie.memberships.get().team).team
    [job] = make_jobs(team, charlie, 1, state=JobState.QUEUED)
    return job


def test_another_teams_job_is_not_found(acme_api, charlies_job):
    for response in (
        acme_api.get(f"/jobs/{charlies_job.public_id}"),
        acme_api.post(f"/jobs/{charlies_job.public_id}/cancel"),
    ):
        assert response.status_code == 404
        assert response.json()["type"] == "urn:unmark:problem:not-found"
    charlies_job.refresh_from_db()
    assert charlies_job.state == JobState.QUEUED


def test_a_key_lists_only_its_own_teams_jobs(acme, alice, acme_api, charlies_job):
    make_jobs(acme, alice, 2)

    listed = {job["id"] for job in acme_api.get("/jobs").json()["data"]}

    assert len(listed) == 2
    assert str(charlies_job.public_id) not in listed


def test_another_teams_upload_cannot_be_submitted(acme, acme_api, charlie, uploads_stack):
    from apps.jobs.models import Upload

    team = charlie.memberships.get().team
    upload = Upload.objects.create(
        team=team, created_by=charlie, file="uploads/x.mp4", name="x.mp4", size=1, sha256="c" * 64
    )
    fund(acme, 100)

    response = acme_api.post("/jobs", {"uploads": [str(upload.public_id)]})

    assert response.status_code == 422
    assert response.json()["errors"][0]["item"] == "uploads[0]"
    assert Upload.objects.filter(pk=upload.pk).exists()
    assert Job.objects.count() == 0


def test_a_personal_teams_key_does_not_open_acme(acme, charlie):
    outsider = ApiClient(key_for(charlie, charlie.memberships.get().team))
    [job] = make_jobs(acme, UserFactory.create(), 1)

    assert outsider.get(f"/jobs/{job.public_id}").status_code == 404
    assert outsider.get("/jobs").json()["data"] == []
