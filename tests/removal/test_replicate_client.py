"""The Replicate client against the Replicate simulator, over real sockets."""

import json
import time

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from apps.removal.base import (
    InputKind,
    PermanentError,
    ProviderUnavailable,
    RateLimited,
    TaskInput,
    TaskState,
)
from tests.replicate import SIM_TOKEN, file_task, wait_for_state
from tests.swc import mark_brightness


def test_a_prediction_starts_runs_and_succeeds_with_a_clean_video_and_its_cost(
    make_replicate, replicate_simulator, file_server, tmp_path
):
    client = make_replicate(replicate_simulator)

    task_id = client.start(file_task(f"{file_server}/sora-export.mp4"))
    status = wait_for_state(client, task_id, TaskState.SUCCEEDED, TaskState.FAILED)

    assert status.state == TaskState.SUCCEEDED
    [url] = status.result_urls
    assert url == f"{replicate_simulator.url}/delivery/{task_id}/output.mp4"
    predict_time = replicate_simulator.prediction(task_id)["metrics"]["predict_time"]
    assert predict_time >= 0.05
    # $0.001 a second: one millionth of a dollar per millisecond of predict time.
    assert status.cost_micros == round(predict_time * 1000)
    assert status.cost_time_ms == round(predict_time * 1000)
    assert status.progress == 100
    result = tmp_path / "result.mp4"
    result.write_bytes(httpx.get(url).content)
    assert max(mark_brightness(result)) < 200  # the white mark is painted out


def test_the_prediction_sends_the_video_link_and_asks_for_start_and_completed_webhooks(
    make_replicate, replicate_simulator, file_server
):
    client = make_replicate(replicate_simulator)

    task_id = client.start(
        file_task(f"{file_server}/sora-export.mp4", callback_url="https://unmark.example/h/1/")
    )

    prediction = replicate_simulator.prediction(task_id)
    assert prediction["input"] == {"video": f"{file_server}/sora-export.mp4"}
    assert prediction["webhook"] == "https://unmark.example/h/1/"
    assert prediction["webhook_events_filter"] == ["start", "completed"]
    assert client.status(task_id).callback_url == "https://unmark.example/h/1/"


def test_a_model_without_a_pinned_version_runs_through_the_models_route(
    make_replicate, replicate_simulator, file_server
):
    client = make_replicate(replicate_simulator, model=replicate_simulator.config.model)

    task_id = client.start(file_task(f"{file_server}/sora-export.mp4"))

    assert wait_for_state(client, task_id, TaskState.SUCCEEDED).result_urls
    paths = [r["path"] for r in replicate_simulator.seen()["requests"]]
    assert "/v1/models/uglyrobot/sora2-watermark-remover/predictions" in paths


def test_a_cold_start_waits_in_starting_as_pending_not_as_a_failure(
    make_replicate, make_replicate_simulator, file_server
):
    simulator = make_replicate_simulator(cold_start_seconds=1.0)
    client = make_replicate(simulator)

    task_id = client.start(file_task(f"{file_server}/sora-export.mp4"))

    assert client.status(task_id).state == TaskState.PENDING
    time.sleep(0.5)
    assert client.status(task_id).state == TaskState.PENDING
    assert wait_for_state(client, task_id, TaskState.SUCCEEDED).result_urls


def test_a_failed_prediction_is_a_failure_with_replicates_error(
    make_replicate, make_replicate_simulator, file_server
):
    client = make_replicate(make_replicate_simulator(failure_rate=1.0))

    task_id = client.start(file_task(f"{file_server}/sora-export.mp4"))
    status = wait_for_state(client, task_id, TaskState.FAILED, TaskState.SUCCEEDED)

    assert status.state == TaskState.FAILED
    assert status.failure_code == "failed"
    assert "CUDA out of memory" in status.failure_message
    assert status.result_urls == ()


def test_an_input_replicate_cannot_fetch_fails_the_prediction(
    make_replicate, replicate_simulator, file_server
):
    client = make_replicate(replicate_simulator)

    task_id = client.start(file_task(f"{file_server}/missing.mp4"))
    status = wait_for_state(client, task_id, TaskState.FAILED, TaskState.SUCCEEDED)

    assert status.state == TaskState.FAILED
    assert "Could not download the input video" in status.failure_message


def test_too_many_creates_are_rate_limited_with_the_reset_as_the_retry_hint(
    make_replicate, make_replicate_simulator, file_server
):
    client = make_replicate(make_replicate_simulator(rate_limit=1))
    client.start(file_task(f"{file_server}/sora-export.mp4"))

    with pytest.raises(RateLimited) as refused:
        client.start(file_task(f"{file_server}/sora-export.mp4"))

    assert refused.value.code == "429"
    assert 50 <= (refused.value.retry_after or 0) <= 60  # "resets in ~60s"


def test_starts_are_claimed_within_replicates_create_limit_per_minute(
    make_replicate, replicate_simulator, db
):
    client = make_replicate(replicate_simulator, api_token="r8_limit-test", create_limit=3)

    assert client.claim_starts(5)[0] == 3
    assert client.claim_starts(1)[0] == 0
    assert 55 < client.seconds_until_start() <= 61


def test_a_canceled_prediction_stops_and_reports_canceled(
    make_replicate, make_replicate_simulator, file_server
):
    simulator = make_replicate_simulator(cold_start_seconds=30)
    client = make_replicate(simulator)
    task_id = client.start(file_task(f"{file_server}/sora-export.mp4"))

    client.cancel(task_id)

    status = client.status(task_id)
    assert status.state == TaskState.FAILED
    assert status.failure_code == "canceled"
    assert simulator.prediction(task_id)["status"] == "canceled"


def test_an_invalid_token_makes_replicate_unavailable(
    make_replicate, replicate_simulator, file_server
):
    client = make_replicate(replicate_simulator, api_token="r8_wrong")

    with pytest.raises(ProviderUnavailable) as refused:
        client.start(file_task(f"{file_server}/sora-export.mp4"))
    with pytest.raises(ProviderUnavailable):
        client.probe()

    assert refused.value.kind == "unauthorized"
    assert replicate_simulator.seen()["predictions"] == []


def test_a_model_that_is_gone_makes_replicate_unavailable(
    make_replicate, make_replicate_simulator, file_server
):
    simulator = make_replicate_simulator(model_gone=True)
    client = make_replicate(simulator)

    with pytest.raises(ProviderUnavailable) as refused:
        client.start(file_task(f"{file_server}/sora-export.mp4"))
    with pytest.raises(ProviderUnavailable) as probed:
        client.probe()

    assert refused.value.kind == probed.value.kind == "model_gone"
    simulator.configure(model_gone=False)
    client.probe()  # back: the probe clears the alert


def test_an_unknown_prediction_is_a_permanent_error_not_an_outage(
    make_replicate, replicate_simulator
):
    client = make_replicate(replicate_simulator)

    with pytest.raises(PermanentError):
        client.status("no-such-prediction")


def test_a_link_is_refused_before_anything_is_sent(make_replicate, replicate_simulator):
    client = make_replicate(replicate_simulator)
    link = TaskInput(kind=InputKind.LINK, reference="job-1", link="https://sora.chatgpt.com/p/s_x")

    with pytest.raises(PermanentError):
        client.start(link)

    assert replicate_simulator.seen()["requests"] == []


def test_webhooks_arrive_signed_the_standard_webhooks_way_and_verify(
    make_replicate,
    replicate_simulator,
    file_server,
    callbacks,
):
    client = make_replicate(replicate_simulator)
    task_id = client.start(file_task(f"{file_server}/sora-export.mp4", callback_url=callbacks.url))

    # Sent apart, as Replicate sends them, so they may arrive in either order.
    start, completed = sorted(
        (callbacks.next(), callbacks.next()), key=lambda c: json.loads(c.body)["status"]
    )

    assert [json.loads(c.body)["status"] for c in (start, completed)] == ["starting", "succeeded"]
    for webhook in (start, completed):
        headers = {k.lower(): v for k, v in webhook.headers.items()}
        assert headers["webhook-signature"].startswith("v1,")
        Webhook(replicate_simulator.webhook_secret).verify(webhook.body, headers)
        assert client.verify_callback(headers, webhook.body) == task_id
    assert start.headers["webhook-id"] != completed.headers["webhook-id"]


def test_the_signing_secret_is_fetched_once_and_cached(make_replicate, replicate_simulator):
    client = make_replicate(replicate_simulator)

    assert client.signing_secret() == replicate_simulator.webhook_secret
    assert client.signing_secret() == replicate_simulator.webhook_secret

    paths = [r["path"] for r in replicate_simulator.seen()["requests"]]
    assert paths.count("/v1/webhooks/default/secret") == 1


def test_drills_change_the_simulator_while_it_runs(replicate_simulator):
    answer = httpx.post(
        f"{replicate_simulator.url}/__sim__/config",
        json={"cold_start_seconds": 2, "failure_rate": 0.5},
    )
    refused = httpx.post(f"{replicate_simulator.url}/__sim__/config", json={"api_token": "x"})

    assert answer.json()["cold_start_seconds"] == 2.0
    assert replicate_simulator.config.failure_rate == 0.5
    assert refused.status_code == 400
    assert replicate_simulator.config.api_token == SIM_TOKEN
