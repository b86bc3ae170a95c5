"""Jobs on Replicate: its signed webhooks, cancellation, the signed link to the original, and
what a video cost us. The Replicate simulator runs over real sockets; the app's side runs
in-process (tasks run from the real broker by `run_tasks`)."""

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core import signing
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from apps.billing.models import LedgerEntry
from apps.jobs import lifecycle, pipeline, tasks
from apps.jobs.models import Job, JobState
from apps.jobs.uploads import original_link
from apps.removal import routing
from apps.removal.models import ProviderAlert
from apps.removal.registry import get_provider
from apps.removal.replicate import cost_micros
from apps.simulators.replicate import ReplicateSimulator
from tests.replicate import PRICE, SIM_TOKEN, file_task, replicate_file_jobs
from tests.threads import run_at_once

# Tasks are queued when the request's transaction commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Stack:
    simulator: ReplicateSimulator
    input_url: str

    def prediction(self, prediction_id: str) -> dict[str, object]:
        return self.simulator.prediction(prediction_id)

    def wait_until(self, prediction_id: str, *statuses: str) -> dict[str, object]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            prediction = self.prediction(prediction_id)
            if prediction["status"] in statuses:
                return prediction
            time.sleep(0.02)
        pytest.fail(f"prediction {prediction_id} never reached {statuses}")


@pytest.fixture
def stack(make_replicate_simulator, file_server, settings, tmp_path: Path, media_storage) -> Stack:
    simulator = make_replicate_simulator(processing_seconds=0.3)
    settings.REPLICATE_SIMULATOR = True
    settings.REPLICATE_BASE_URL = simulator.url
    settings.REPLICATE_API_TOKEN = SIM_TOKEN
    settings.REPLICATE_WEBHOOK_SECRET = ""  # fetched from the simulator
    settings.REPLICATE_PRICE_PER_SECOND = PRICE
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.POLLER_RUN_SECONDS = 0
    settings.DOWNLOAD_TEMP_DIR = str(tmp_path / "tmp")
    return Stack(simulator, f"{file_server}/sora-export.mp4")


def sent_job(stack: Stack, membership, clip: Path, run_tasks, task_id: str | None = None):
    """A file job Replicate has a prediction for, as `send_job` leaves it, and the
    prediction's id (the job's task id unless `task_id` says otherwise). The prediction's input
    is the clip on a test file server (the signed link to the original has its own tests)."""
    [job] = replicate_file_jobs(membership, clip)
    run_tasks.purge()  # this test drives the job itself
    prediction_id = get_provider("replicate").start(
        file_task(stack.input_url, callback_url=job.callback_url)
    )
    job.move(
        JobState.SUBMITTED,
        task_id=prediction_id if task_id is None else task_id,
        attempts=1,
        submitted_at=timezone.now(),
        next_check_at=timezone.now() + timedelta(minutes=5),
    )
    return job, prediction_id


def post_webhook(
    client,
    job: Job,
    body: bytes,
    *,
    secret: str,
    webhook_id: str = "",
    at: datetime | None = None,
):
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    when = at or datetime.now(UTC)
    return client.post(
        reverse("jobs:callback", kwargs={"provider": "replicate", "token": job.callback_token}),
        data=body,
        content_type="application/json",
        headers={
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, when, body.decode()),
        },
    )


def ledger_kinds(job: Job) -> list[str]:
    return sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))


# --- Webhooks ----------------------------------------------------------------------------------
def test_no_secret_of_replicate_reaches_the_logs(
    stack, alice_membership, clip, client, run_tasks, caplog
):
    caplog.set_level(logging.DEBUG)
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    body = json.dumps(stack.wait_until(prediction_id, "succeeded")).encode()
    post_webhook(client, job, body, secret=stack.simulator.webhook_secret)
    run_tasks()

    ours = [r for r in caplog.records if not r.name.startswith("apps.simulators")]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "replicate call" in text  # the logs did capture the run
    for secret in (SIM_TOKEN, stack.simulator.webhook_secret, job.callback_token):
        assert secret not in text


def test_the_job_names_its_replicate_webhook_route(stack, alice_membership, clip):
    [job] = replicate_file_jobs(alice_membership, clip)

    assert job.callback_url == f"http://testserver/hooks/replicate/{job.callback_token}/"


def test_a_signed_completed_webhook_finishes_the_job_charged_once_with_its_cost(
    stack, alice_membership, clip, client, run_tasks
):
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    prediction = stack.wait_until(prediction_id, "succeeded")
    body = json.dumps(prediction).encode()

    answer = post_webhook(client, job, body, secret=stack.simulator.webhook_secret)
    run_tasks()

    assert answer.status_code == 200
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert (job.result_size or 0) > 0
    predict_time = prediction["metrics"]["predict_time"]
    assert job.provider_cost_micros == cost_micros(predict_time, PRICE) > 0
    assert ledger_kinds(job) == ["capture", "hold"]


def test_a_failed_prediction_fails_the_job_refunded_with_what_replicate_billed(
    stack, alice_membership, clip, client, run_tasks
):
    stack.simulator.configure(failure_rate=1.0)
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    prediction = stack.wait_until(prediction_id, "failed")

    post_webhook(
        client, job, json.dumps(prediction).encode(), secret=stack.simulator.webhook_secret
    )
    run_tasks()

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.failure_code == "replicate_failed"
    assert "CUDA out of memory" in job.failure_message
    assert ledger_kinds(job) == ["hold", "release"]
    predict_time = prediction["metrics"]["predict_time"]
    assert job.provider_cost_micros == cost_micros(predict_time, PRICE) > 0


def test_the_same_delivery_again_is_refused_and_changes_nothing(
    stack, alice_membership, clip, client, run_tasks
):
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    body = json.dumps(stack.wait_until(prediction_id, "succeeded")).encode()
    secret = stack.simulator.webhook_secret
    first = post_webhook(client, job, body, secret=secret, webhook_id="msg_once")
    run_tasks()

    replayed = post_webhook(client, job, body, secret=secret, webhook_id="msg_once")

    assert (first.status_code, replayed.status_code) == (200, 409)
    assert run_tasks() == 0  # nothing was queued for the replay
    assert ledger_kinds(job) == ["capture", "hold"]


def test_repeated_deliveries_settle_the_job_once(stack, alice_membership, clip, client, run_tasks):
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    body = json.dumps(stack.wait_until(prediction_id, "succeeded")).encode()

    answers = [
        post_webhook(client, job, body, secret=stack.simulator.webhook_secret).status_code
        for _ in range(3)
    ]
    run_tasks()

    assert answers == [200, 200, 200]
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert ledger_kinds(job) == ["capture", "hold"]
    assert Job.objects.get(pk=job.pk).events.filter(to_state=JobState.SUCCEEDED).count() == 1


@pytest.mark.parametrize("spoil", ["forged", "stale", "tampered", "unsigned"])
def test_a_webhook_that_does_not_verify_is_rejected_and_changes_nothing(
    stack, alice_membership, clip, client, run_tasks, spoil
):
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    body = json.dumps(stack.wait_until(prediction_id, "succeeded")).encode()
    secret = stack.simulator.webhook_secret
    url = reverse("jobs:callback", kwargs={"provider": "replicate", "token": job.callback_token})

    if spoil == "forged":
        answer = post_webhook(client, job, body, secret="whsec_Zm9yZ2VkLWtleS1mb3ItdGVzdHM=")
    elif spoil == "stale":
        stale = datetime.now(UTC) - timedelta(minutes=10)
        answer = post_webhook(client, job, body, secret=secret, at=stale)
    elif spoil == "tampered":
        other = json.dumps({**json.loads(body), "output": "https://evil.example/x.mp4"})
        headers = _headers_for(secret, body)  # signed for the real body, sent with another
        answer = client.post(url, data=other, content_type="application/json", headers=headers)
    else:
        answer = client.post(url, data=body, content_type="application/json")

    assert answer.status_code == 400
    assert run_tasks() == 0
    job.refresh_from_db()
    assert job.state == JobState.SUBMITTED
    assert ledger_kinds(job) == ["hold"]


def _headers_for(secret: str, body: bytes) -> dict[str, str]:
    when = datetime.now(UTC)
    return {
        "webhook-id": "msg_tampered",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_tampered", when, body.decode()),
    }


def test_completed_right_after_start_is_not_lost_to_coalescing(
    stack, alice_membership, clip, client, run_tasks
):
    # Long enough that the check the first webhook starts finds it still running, however
    # slow the machine.
    stack.simulator.configure(processing_seconds=2.0)
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    secret = stack.simulator.webhook_secret
    started = post_webhook(
        client, job, json.dumps(stack.prediction(prediction_id)).encode(), secret=secret
    )
    run_tasks()
    job.refresh_from_db()
    assert job.state in (JobState.SUBMITTED, JobState.PROCESSING)

    completed = post_webhook(
        client,
        job,
        json.dumps(stack.wait_until(prediction_id, "succeeded")).encode(),
        secret=secret,
    )
    run_tasks()

    assert (started.status_code, completed.status_code) == (200, 200)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED


def test_a_webhook_for_another_prediction_is_refused(
    stack, alice_membership, clip, client, run_tasks
):
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks, task_id="someone-elses")
    body = json.dumps(stack.wait_until(prediction_id, "succeeded")).encode()

    answer = post_webhook(client, job, body, secret=stack.simulator.webhook_secret)

    assert answer.status_code == 400
    assert run_tasks() == 0


def test_a_webhook_adopts_the_prediction_of_a_start_whose_answer_was_lost(
    stack, alice_membership, clip, client, run_tasks
):
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks, task_id="")
    prediction = stack.prediction(prediction_id)

    answer = post_webhook(
        client, job, json.dumps(prediction).encode(), secret=stack.simulator.webhook_secret
    )
    run_tasks()

    assert answer.status_code == 200
    job.refresh_from_db()
    assert job.task_id == prediction["id"]


def test_a_webhook_on_a_job_that_is_not_on_replicate_is_not_found(
    stack, alice_membership, clip, client
):
    [job] = replicate_file_jobs(alice_membership, clip)
    Job.objects.filter(pk=job.pk).update(provider="swc")

    answer = post_webhook(client, job, b"{}", secret=stack.simulator.webhook_secret)

    assert answer.status_code == 404


# --- Cancellation ------------------------------------------------------------------------------
def test_canceling_a_job_on_replicate_stops_its_prediction_and_refunds(
    stack, alice_membership, clip, login, alice, run_tasks
):
    stack.simulator.configure(cold_start_seconds=30)
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    assert job.is_cancelable

    answer = login(alice).post(
        reverse(
            "jobs:cancel",
            kwargs={"team_id": alice_membership.team.public_id, "public_id": job.public_id},
        )
    )
    run_tasks()

    assert answer.status_code == 302
    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    assert ledger_kinds(job) == ["hold", "release"]
    assert stack.prediction(prediction_id)["status"] == "canceled"


def test_a_sent_job_whose_provider_cannot_stop_it_still_cannot_be_canceled(
    stack, alice_membership, clip, run_tasks
):
    job, _ = sent_job(stack, alice_membership, clip, run_tasks)
    Job.objects.filter(pk=job.pk).update(provider="kie")
    job.refresh_from_db()

    assert not job.is_cancelable
    assert lifecycle.cancel_job(job) is False
    assert "cannot be stopped" in job.why_not_cancelable


# --- The signed link to the original (local disk) ---------------------------------------------
def test_the_signed_link_serves_the_original_without_signing_in(
    stack, alice_membership, clip, client
):
    [job] = replicate_file_jobs(alice_membership, clip)

    link = original_link(job, seconds=60)
    answer = client.get(link.removeprefix("http://testserver"))

    assert link.startswith("http://testserver/originals/")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "video/mp4"
    assert b"".join(answer.streaming_content) == clip.read_bytes()


def test_an_expired_signed_link_is_not_found(stack, alice_membership, clip, client):
    [job] = replicate_file_jobs(alice_membership, clip)

    link = original_link(job, seconds=-1)

    assert client.get(link.removeprefix("http://testserver")).status_code == 404


def test_a_tampered_signed_link_is_not_found(stack, alice_membership, clip, client):
    [job] = replicate_file_jobs(alice_membership, clip)
    [other] = replicate_file_jobs(alice_membership, clip)
    token = original_link(job, seconds=60).rstrip("/").rsplit("/", 1)[1]
    payload, signed_part = token.split(":", 1)
    public_id, expires = json.loads(signing.b64_decode(payload.encode()))
    swapped = json.dumps([str(other.public_id), expires], separators=(",", ":"))
    forged = f"{signing.b64_encode(swapped.encode()).decode()}:{signed_part}"

    answer = client.get(reverse("jobs:original_link", kwargs={"token": forged}))
    genuine = client.get(reverse("jobs:original_link", kwargs={"token": token}))

    assert public_id == str(job.public_id)
    assert (answer.status_code, genuine.status_code) == (404, 200)


def test_the_signed_link_dies_with_its_job(stack, alice_membership, clip, client):
    [job] = replicate_file_jobs(alice_membership, clip)
    link = original_link(job, seconds=60)
    lifecycle.cancel_job(job)

    assert client.get(link.removeprefix("http://testserver")).status_code == 404


# --- Races (PostgreSQL) ------------------------------------------------------------------------
@pytest.mark.postgres
def test_webhook_checks_racing_a_cancel_settle_the_job_exactly_once(
    stack, alice_membership, clip, run_tasks
):
    job, prediction_id = sent_job(stack, alice_membership, clip, run_tasks)
    stack.wait_until(prediction_id, "succeeded")

    def work(index: int) -> bool | None:
        if index == 0:
            return lifecycle.cancel_job(Job.objects.get(pk=job.pk))
        tasks.check_after_callback(job.pk, prediction_id)
        return None

    outcomes = run_at_once(4, work)

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    job.refresh_from_db()
    settled = "release" if job.state == JobState.CANCELED else "capture"
    assert job.state in (JobState.CANCELED, JobState.SUCCEEDED)
    assert ledger_kinds(job) == sorted(["hold", settled])
    call_command("reconcile")  # raises on any drift


# --- Sending ----------------------------------------------------------------------------------
def test_a_job_replicate_throttles_waits_its_reset_without_using_an_attempt(
    stack, alice_membership, clip, run_tasks
):
    stack.simulator.configure(rate_limit=1)
    get_provider("replicate").start(file_task(stack.input_url))  # uses up the minute
    [job] = replicate_file_jobs(alice_membership, clip)
    run_tasks.purge()

    pipeline.send_job(job)

    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.attempts == 0
    assert job.next_check_at is not None
    assert job.next_check_at - timezone.now() > timedelta(seconds=45)  # "resets in ~60s"
    assert "Replicate is busy" in job.events.latest("id").detail
    assert ledger_kinds(job) == ["hold"]


@pytest.mark.parametrize(
    ("trouble", "kind"), [({"api_token": "r8_revoked"}, "unauthorized"), ({}, "model_gone")]
)
def test_a_bad_token_or_a_model_gone_holds_jobs_and_alerts_until_a_probe_succeeds(
    stack, alice_membership, clip, run_tasks, settings, trouble, kind
):
    if trouble:
        settings.REPLICATE_API_TOKEN = trouble["api_token"]
    else:
        stack.simulator.configure(model_gone=True)
    [job] = replicate_file_jobs(alice_membership, clip)
    run_tasks.purge()

    pipeline.send_job(job)

    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.attempts == 0
    [alert] = ProviderAlert.objects.filter(provider="replicate", resolved_at__isnull=True)
    assert alert.kind == kind
    assert stack.simulator.seen()["predictions"] == []
    settings.REPLICATE_API_TOKEN = SIM_TOKEN
    stack.simulator.configure(model_gone=False)

    routing.probe_unavailable_providers()

    assert not ProviderAlert.objects.filter(resolved_at__isnull=True).exists()
