"""`Idempotency-Key` with Stripe's semantics, and the per-key rate limit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.api.idempotency import forget_old
from apps.api.models import IdempotentRequest
from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry
from apps.jobs.models import Job
from tests.api.conftest import GOOD_LINK, OTHER_LINK, ApiClient, key_for
from tests.api.test_jobs_api import fund
from tests.threads import run_at_once


def test_the_same_key_and_body_return_the_first_answer_and_create_once(acme, acme_api):
    fund(acme, 100)
    body = {"links": [GOOD_LINK, OTHER_LINK]}

    first = acme_api.post("/jobs", body, idempotency_key="batch-7")
    second = acme_api.post("/jobs", body, idempotency_key="batch-7")

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Job.objects.count() == 2
    assert ledger.open_wallet(acme).held == 20


def test_the_same_key_with_another_body_is_refused(acme, acme_api):
    fund(acme, 100)
    acme_api.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key="k1")

    response = acme_api.post("/jobs", {"links": [OTHER_LINK]}, idempotency_key="k1")

    assert response.status_code == 422
    assert response.json()["type"] == "urn:unmark:problem:idempotency-key-reused"
    assert Job.objects.count() == 1


def test_the_same_key_on_another_path_is_refused(acme, acme_api):
    fund(acme, 100)
    job_id = acme_api.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key="k2").json()
    job_id = job_id["jobs"][0]["id"]

    response = acme_api.post(f"/jobs/{job_id}/cancel", idempotency_key="k2")

    assert response.status_code == 422
    assert Job.objects.get().state == "queued"


def test_a_refusal_is_replayed_too(acme, acme_api):
    fund(acme, 5)
    body = {"links": [GOOD_LINK]}
    first = acme_api.post("/jobs", body, idempotency_key="poor")
    fund(acme, 100)

    again = acme_api.post("/jobs", body, idempotency_key="poor")

    assert first.status_code == again.status_code == 402
    assert again.json() == first.json()
    assert again["Content-Type"] == "application/problem+json"
    assert Job.objects.count() == 0


def test_keys_are_per_team(acme, alice, charlie, acme_api):
    fund(acme, 100)
    charlies_team = charlie.memberships.get().team
    charlies_api = ApiClient(key_for(charlie, charlies_team))

    ours = acme_api.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key="shared-name")
    theirs = charlies_api.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key="shared-name")

    assert ours.status_code == theirs.status_code == 201
    assert ours.json()["jobs"][0]["id"] != theirs.json()["jobs"][0]["id"]


def test_a_request_still_running_tells_the_next_to_retry(acme, acme_api):
    fund(acme, 100)
    IdempotentRequest.objects.create(team=acme, key="busy", fingerprint="?")
    # The same fingerprint as the request below, as if it were running now.
    from django.test import RequestFactory

    from apps.api.idempotency import fingerprint

    request = RequestFactory().post(
        "/api/v1/jobs", '{"links": []}', content_type="application/json"
    )
    IdempotentRequest.objects.filter(key="busy").update(fingerprint=fingerprint(request))

    response = acme_api.post("/jobs", {"links": []}, idempotency_key="busy")

    assert response.status_code == 409
    assert response["Retry-After"] == "1"
    assert response.json()["type"] == "urn:unmark:problem:idempotency-key-in-progress"


class Crash(Exception):
    """The process dying between the work and the saving of its answer."""


def test_a_crash_before_the_answer_is_saved_leaves_nothing_and_the_retry_creates_once(
    acme, acme_api, monkeypatch
):
    fund(acme, 100)
    body = {"links": [GOOD_LINK, OTHER_LINK]}
    saving = IdempotentRequest.save

    def crash_when_the_answer_is_saved(self, *args, **kwargs):
        if kwargs.get("update_fields"):
            raise Crash
        return saving(self, *args, **kwargs)

    monkeypatch.setattr(IdempotentRequest, "save", crash_when_the_answer_is_saved)
    with pytest.raises(Crash):
        acme_api.post("/jobs", body, idempotency_key="crash")

    assert Job.objects.count() == 0
    assert not LedgerEntry.objects.filter(team=acme, kind=EntryKind.HOLD).exists()
    assert ledger.open_wallet(acme).held == 0

    monkeypatch.setattr(IdempotentRequest, "save", saving)
    retried = acme_api.post("/jobs", body, idempotency_key="crash")
    again = acme_api.post("/jobs", body, idempotency_key="crash")

    assert retried.status_code == again.status_code == 201
    assert again.json() == retried.json()
    assert Job.objects.count() == 2
    assert LedgerEntry.objects.filter(team=acme, kind=EntryKind.HOLD).count() == 2
    assert ledger.open_wallet(acme).held == 20


def test_a_server_error_keeps_neither_its_work_nor_its_key(acme, acme_api, monkeypatch):
    from django.http import HttpResponse

    from apps.api import guard

    fund(acme, 100)
    respond_once = guard.idempotency.respond_once

    def work_then_fail(request, *, team_id, run):
        def failing():
            run()
            return HttpResponse(status=502)

        return respond_once(request, team_id=team_id, run=failing)

    monkeypatch.setattr(guard.idempotency, "respond_once", work_then_fail)
    failed = acme_api.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key="flaky")

    assert failed.status_code == 502
    assert Job.objects.count() == 0
    assert ledger.open_wallet(acme).held == 0
    assert not IdempotentRequest.objects.exists()


@pytest.mark.parametrize("key", ["k" * 256, "tab\there", "nul\x00"])
def test_a_key_too_long_or_not_printable_is_refused(acme, acme_api, key):
    response = acme_api.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key=key)

    assert response.status_code == 400
    assert response.json()["type"] == "urn:unmark:problem:invalid-idempotency-key"
    assert Job.objects.count() == 0


def test_answers_are_kept_a_day_then_forgotten(acme, acme_api):
    fund(acme, 100)
    acme_api.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key="old")
    acme_api.post("/jobs", {"links": [OTHER_LINK]}, idempotency_key="new")
    IdempotentRequest.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=24, minutes=1)
    )
    IdempotentRequest.objects.filter(key="new").update(
        created_at=timezone.now() - timedelta(hours=23, minutes=59)
    )

    assert forget_old() == 1

    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]


def test_the_worker_schedule_forgets_old_answers(acme, acme_api):
    from django_q.models import Schedule

    from apps import taskqueue
    from apps.api.tasks import forget_idempotency_keys

    fund(acme, 100)
    acme_api.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key="old")
    acme_api.post("/jobs", {"links": [OTHER_LINK]}, idempotency_key="fresh")
    IdempotentRequest.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(days=2)
    )
    taskqueue.ensure_schedules()

    forgotten = forget_idempotency_keys()

    assert Schedule.objects.filter(func="apps.api.tasks.forget_idempotency_keys").exists()
    assert forgotten == 1
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["fresh"]


@pytest.mark.postgres
def test_twenty_concurrent_posts_with_one_key_make_one_set_of_jobs_and_one_hold(
    transactional_db, acme, alice
):
    fund(acme, 1000)
    raw_key = key_for(alice, acme)
    body = {"links": [GOOD_LINK, OTHER_LINK]}

    def post(_: int):
        response = ApiClient(raw_key).post("/jobs", body, idempotency_key="race")
        return response.status_code, response.json()

    results = run_at_once(20, post)

    assert not [r for r in results if isinstance(r, Exception)], results
    statuses = [status for status, _ in results]  # type: ignore[misc]
    assert set(statuses) <= {201, 409}
    created = [answer for status, answer in results if status == 201]  # type: ignore[misc]
    assert created
    assert all(answer == created[0] for answer in created)
    assert Job.objects.filter(team=acme).count() == 2
    assert LedgerEntry.objects.filter(team=acme, kind=EntryKind.HOLD).count() == 2
    assert ledger.open_wallet(acme).held == 20
    # Once the first has answered, every retry gets its answer.
    again = ApiClient(raw_key).post("/jobs", body, idempotency_key="race")
    assert again.status_code == 201
    assert again.json() == created[0]


# --- Rate limit ---------------------------------------------------------------------------------
def test_a_key_over_its_limit_gets_429_with_retry_after(acme, alice, settings):
    settings.API_RATE_PER_MINUTE = 3
    client = ApiClient(key_for(alice, acme))
    other = ApiClient(key_for(alice, acme, name="Other"))

    answers = [client.get("/balance") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited["Content-Type"] == "application/problem+json"
    assert limited.json()["type"] == "urn:unmark:problem:rate-limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    # Per key: another key of the same team is not held back.
    assert other.get("/balance").status_code == 200


def test_a_rate_limited_post_is_not_stored_and_can_be_retried(acme, alice, settings):
    fund(acme, 100)
    settings.API_RATE_PER_MINUTE = 1
    client = ApiClient(key_for(alice, acme))
    client.get("/balance")

    limited = client.post("/jobs", {"links": [GOOD_LINK]}, idempotency_key="later")

    assert limited.status_code == 429
    assert not IdempotentRequest.objects.exists()
    assert Job.objects.count() == 0
