"""The Replicate client fed Replicate's own example payloads (its HTTP API and webhook docs,
copied), through respx: checked against Replicate's text, not our simulator."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import respx
from standardwebhooks.webhooks import Webhook

from apps.removal.base import (
    CallbackRejected,
    InputKind,
    NoAnswer,
    PermanentError,
    ProviderUnavailable,
    RateLimited,
    RetryableError,
    TaskInput,
    TaskState,
)
from apps.removal.replicate import ReplicateProvider, cost_micros
from tests.replicate import file_task

API = "https://api.replicate.com"
VERSION = "7b636d39f482f129dfa3429fdc7c5c2d4f4ef36e4cbc6d919b701c1d39162797"
PRICE = Decimal("0.000975")
INPUT_URL = "https://bucket.example/originals/clip.mp4?X-Amz-Signature=abc"

# --- from the docs ---------------------------------------------------------------------------
# "Get a prediction" / list predictions example (replicate/hello-world, succeeded).
DOC_SUCCEEDED = """{
  "completed_at": "2023-09-08T16:19:34.791859Z",
  "created_at": "2023-09-08T16:19:34.907244Z",
  "data_removed": false,
  "error": null,
  "id": "gm3qorzdhgbfurvjtvhg6dckhu",
  "input": {"text": "Alice"},
  "metrics": {"predict_time": 0.012683},
  "output": "hello Alice",
  "started_at": "2023-09-08T16:19:34.779176Z",
  "source": "api",
  "status": "succeeded",
  "urls": {
    "web": "https://replicate.com/p/gm3qorzdhgbfurvjtvhg6dckhu",
    "get": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu",
    "cancel": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu/cancel"
  },
  "model": "replicate/hello-world",
  "version": "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
}"""
# The webhook docs' "unfinished prediction", as a `start` webhook carries it.
DOC_STARTING = """{
  "id": "ufawqhfynnddngldkgtslldrkq",
  "version": "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
  "created_at": "2022-04-26T22:13:06.224088Z",
  "started_at": null,
  "completed_at": null,
  "status": "starting",
  "input": {"text": "Alice"},
  "output": null,
  "error": null,
  "logs": null,
  "metrics": {}
}"""
DOC_THROTTLED = '{"detail":"Request was throttled. Your rate limit resets in ~30s."}'


def with_output(document: str, output: object) -> dict[str, object]:
    """A documented prediction with this model's output (one video URL) instead of text."""
    prediction = json.loads(document)
    prediction["output"] = output
    return prediction


@pytest.fixture
def replicate() -> Iterator[ReplicateProvider]:
    client = ReplicateProvider(
        api_token="r8_live-token",
        base_url=API,
        model=f"uglyrobot/sora2-watermark-remover:{VERSION}",
        price_per_second=PRICE,
        webhook_secret="whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM=",
    )
    yield client
    client.close()


@respx.mock
def test_a_prediction_is_created_on_the_pinned_version_with_the_video_and_webhook(replicate):
    route = respx.post(f"{API}/v1/predictions").respond(201, text=DOC_STARTING)

    task_id = replicate.start(file_task(INPUT_URL, callback_url="https://unmark.example/h/t/"))

    assert task_id == "ufawqhfynnddngldkgtslldrkq"
    sent = json.loads(route.calls.last.request.content)
    assert sent == {
        "version": VERSION,
        "input": {"video": INPUT_URL},
        "webhook": "https://unmark.example/h/t/",
        "webhook_events_filter": ["start", "completed"],
    }
    assert route.calls.last.request.headers["Authorization"] == "Bearer r8_live-token"


@respx.mock
def test_the_documented_succeeded_prediction_gives_the_video_and_its_cost(replicate):
    url = "https://replicate.delivery/xezq/abc/output.mp4"
    respx.get(f"{API}/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu").respond(
        200, json=with_output(DOC_SUCCEEDED, url)
    )

    status = replicate.status("gm3qorzdhgbfurvjtvhg6dckhu")

    assert status.state == TaskState.SUCCEEDED
    assert status.result_urls == (url,)
    assert status.cost_time_ms == 13
    # 0.012683 s at $0.000975 a second is 12.37 millionths of a dollar.
    assert status.cost_micros == 12


@respx.mock
def test_the_documented_text_output_is_no_video_and_fails_rather_than_waits(replicate):
    respx.get(f"{API}/v1/predictions/p1").respond(200, text=DOC_SUCCEEDED)

    status = replicate.status("p1")

    assert status.state == TaskState.FAILED
    assert status.failure_code == "no_result"


@respx.mock
def test_the_documented_starting_prediction_is_pending(replicate):
    respx.get(f"{API}/v1/predictions/p1").respond(200, text=DOC_STARTING)

    status = replicate.status("p1")

    assert status.state == TaskState.PENDING
    assert status.cost_micros is None  # nothing has run yet


@pytest.mark.parametrize(
    ("changes", "state", "code", "message"),
    [
        ({"status": "processing", "logs": " 42%|████▏     | 42/100"}, TaskState.RUNNING, "", ""),
        ({"status": "failed", "error": "CUDA error"}, TaskState.FAILED, "failed", "CUDA error"),
        ({"status": "canceled"}, TaskState.FAILED, "canceled", "the prediction was canceled"),
        ({"status": "aborted"}, TaskState.RUNNING, "", ""),  # unknown: not final
    ],
)
@respx.mock
def test_every_documented_status_maps_to_a_task_state(replicate, changes, state, code, message):
    respx.get(f"{API}/v1/predictions/p1").respond(200, json={**json.loads(DOC_STARTING), **changes})

    status = replicate.status("p1")

    assert (status.state, status.failure_code, status.failure_message) == (state, code, message)
    if changes.get("logs"):
        assert status.progress == 42


@respx.mock
def test_the_documented_throttle_is_a_rate_limit_with_its_reset_as_the_hint(replicate):
    respx.post(f"{API}/v1/predictions").respond(429, text=DOC_THROTTLED)

    with pytest.raises(RateLimited) as refused:
        replicate.start(file_task(INPUT_URL))

    assert refused.value.retry_after == 30.0


@respx.mock
def test_a_retry_after_header_is_honoured_over_the_body(replicate):
    respx.post(f"{API}/v1/predictions").respond(
        429, text=DOC_THROTTLED, headers={"Retry-After": "7"}
    )

    with pytest.raises(RateLimited) as refused:
        replicate.start(file_task(INPUT_URL))

    assert refused.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (401, ProviderUnavailable, "unauthorized"),
        (403, ProviderUnavailable, "unauthorized"),
        (402, ProviderUnavailable, "out_of_credits"),
        (404, ProviderUnavailable, "model_gone"),
        (422, PermanentError, None),
        (500, RetryableError, None),
        (503, RetryableError, None),
    ],
)
@respx.mock
def test_errors_on_create_say_what_to_do_next(replicate, status, error, kind):
    respx.post(f"{API}/v1/predictions").respond(
        status, json={"title": "x", "detail": "documented detail", "status": status}
    )

    with pytest.raises(error) as refused:
        replicate.start(file_task(INPUT_URL))

    assert refused.value.code == str(status)
    assert "documented detail" in str(refused.value)
    if kind:
        assert refused.value.kind == kind


@respx.mock
def test_a_create_whose_answer_is_lost_may_have_started_a_prediction(replicate):
    respx.post(f"{API}/v1/predictions").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(NoAnswer):
        replicate.start(file_task(INPUT_URL))


def test_a_link_is_not_something_replicate_takes(replicate):
    with pytest.raises(PermanentError):
        replicate.start(TaskInput(kind=InputKind.LINK, reference="r", link=INPUT_URL))


def test_cost_is_integer_micros_of_the_price_per_second():
    assert cost_micros(41.5, Decimal("0.000975")) == 40_463  # $0.0404625, rounded half up
    assert cost_micros(0, Decimal("0.000975")) == 0


def signed_headers(secret: str, body: bytes, *, at: datetime | None = None) -> dict[str, str]:
    when = at or datetime.now(UTC)
    return {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek", when, body.decode()
        ),
    }


def test_a_documented_webhook_signed_with_the_secret_names_its_prediction(replicate):
    body = DOC_STARTING.encode()

    task_id = replicate.verify_callback(signed_headers(replicate.signing_secret(), body), body)

    assert task_id == "ufawqhfynnddngldkgtslldrkq"


@pytest.mark.parametrize(
    "spoil",
    [
        "forged",
        "stale",
        "tampered",
        "unsigned",
        "garbled",
    ],
)
def test_a_webhook_that_does_not_verify_is_rejected(replicate, spoil):
    body = DOC_STARTING.encode()
    secret = replicate.signing_secret()
    if spoil == "forged":
        headers = signed_headers("whsec_" + "b3RoZXIta2V5LWZvci10ZXN0cw==", body)
    elif spoil == "stale":
        headers = signed_headers(secret, body, at=datetime.now(UTC) - timedelta(minutes=6))
    elif spoil == "tampered":
        headers = signed_headers(secret, body)
        body = body.replace(b"starting", b"succeeded")
    elif spoil == "unsigned":
        headers = {}
    else:
        headers = {**signed_headers(secret, body), "webhook-signature": "v1 not-base64!"}

    with pytest.raises(CallbackRejected):
        replicate.verify_callback(headers, body)


@respx.mock
def test_the_signing_secret_is_fetched_from_replicate_when_not_configured():
    route = respx.get(f"{API}/v1/webhooks/default/secret").respond(
        200, json={"key": "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM="}
    )
    client = ReplicateProvider(
        api_token="r8_live-token", base_url=API, model="a/b", price_per_second=PRICE
    )
    try:
        assert client.signing_secret().startswith("whsec_")
        assert client.signing_secret().startswith("whsec_")
    finally:
        client.close()

    assert route.call_count == 1
