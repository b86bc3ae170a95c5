"""The client fed Kie's own example payloads (shared/kie-api.md, copied verbatim) and the
variants integrations have seen, through respx: checked against Kie's text, not our simulator."""

import json
import logging

import httpx
import pytest
import respx

from apps.removal.base import (
    CallbackRejected,
    PermanentError,
    ProviderUnavailable,
    RateLimited,
    RetryableError,
    TaskNotReady,
    TaskState,
)
from apps.removal.kie import KieProvider, sign_callback
from config.logfmt import KeyValueFormatter
from tests.stack import link_task

KIE = "https://api.kie.ai"
LIVE_KEY = "kie-live-key-0123456789abcdef"
SORA_LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"
CREATE = f"{KIE}/api/v1/jobs/createTask"
RECORD = f"{KIE}/api/v1/jobs/recordInfo"

# --- verbatim from the contract ------------------------------------------------------------
DOC_CREATE_SUCCESS = '{"code": 200, "msg": "success", "data": {"taskId": "task_sora-watermark-remover_1765183831860"}}'  # noqa: E501 (verbatim)
DOC_RECORD_SUCCESS = r"""{"code": 200, "msg": "success", "data": {
  "taskId": "…", "model": "sora-watermark-remover", "state": "success",
  "param": "{\"model\":…,\"callBackUrl\":…,\"input\":{…}}",
  "resultJson": "{\"resultUrls\":[\"https://tempfile.aiquickdraw.com/…/out.mp4\"]}",
  "failCode": "", "failMsg": "", "costTime": 15000,
  "completeTime": 1698765432000, "createTime": 1698765400000, "updateTime": 1698765432000}}"""
DOC_RECORD_NULL = '{"code": 422, "msg": "recordInfo is null", "data": null}'
DOC_CALLBACK_SUCCESS = r"""{"code": 200, "msg": "Playground task completed successfully.",
 "data": {"taskId": "…", "model": "sora-watermark-remover", "state": "success", "param": "…",
          "resultJson": "{\"resultUrls\":[\"https://…mp4\"]}", "costTime": 8,
          "completeTime": 1698765432000, "createTime": 1698765400000, "updateTime": 1698765432000,
          "consumeCredits": 10, "remainedCredits": 2510330}}"""
DOC_PAUSED = '{"code": 500, "msg": "This interface is temporarily paused"}'
DOC_CREDIT = '{"code": 200, "msg": "success", "data": 2510330}'
# The documented failure is shown with its unchanged fields elided ("{…, "state": "fail", …}");
# here the elision is filled with the success record's fields and resultJson dropped.
DOC_RECORD_FAIL = r"""{"code": 200, "msg": "success", "data": {
  "taskId": "…", "model": "sora-watermark-remover", "state": "fail",
  "param": "{\"model\":…,\"callBackUrl\":…,\"input\":{…}}",
  "failCode": "500", "failMsg": "Internal server error", "costTime": 15000,
  "completeTime": 1698765432000, "createTime": 1698765400000, "updateTime": 1698765432000}}"""
DOC_CALLBACK_FAIL = r"""{"code": 501, "msg": "Playground task failed.", "data": {"taskId": "…",
 "state": "fail", "failCode": "500", "failMsg": "Internal server error", "consumeCredits": 0}}"""


@pytest.fixture
def kie():
    provider = KieProvider(api_key=LIVE_KEY, base_url=KIE, timeout_seconds=7)
    yield provider
    provider.close()


@pytest.fixture
def kie_api():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def answer(text: str, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=text.encode(), headers=headers)


def test_the_documented_create_answer_gives_its_task_id(kie, kie_api):
    route = kie_api.post(CREATE).mock(return_value=answer(DOC_CREATE_SUCCESS))

    task_id = kie.start(
        link_task(SORA_LINK, callback_url="https://unmark.example/hooks/kie/t0k3n/")
    )

    assert task_id == "task_sora-watermark-remover_1765183831860"
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {LIVE_KEY}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.read() == (
        b'{"model":"sora-watermark-remover","input":{"video_url":"'
        + SORA_LINK.encode()
        + b'","upload_method":"s3"},"callBackUrl":"https://unmark.example/hooks/kie/t0k3n/"}'
    )


def test_without_a_callback_url_none_is_sent(kie, kie_api):
    route = kie_api.post(CREATE).mock(return_value=answer(DOC_CREATE_SUCCESS))

    kie.start(link_task(SORA_LINK, callback_url=None))

    assert b"callBackUrl" not in route.calls.last.request.read()


def test_every_call_carries_explicit_timeouts(kie, kie_api):
    route = kie_api.get(f"{KIE}/api/v1/chat/credit").mock(return_value=answer(DOC_CREDIT))

    kie.remaining_credits()

    timeouts = route.calls.last.request.extensions["timeout"]
    assert timeouts == {"connect": 7, "read": 7, "write": 7, "pool": 7}


def test_the_documented_success_record_gives_the_result_url(kie, kie_api):
    route = kie_api.get(RECORD).mock(return_value=answer(DOC_RECORD_SUCCESS))

    status = kie.status("task_sora-watermark-remover_1765183831860")

    assert route.calls.last.request.url.params["taskId"] == (
        "task_sora-watermark-remover_1765183831860"
    )
    assert status.state is TaskState.SUCCEEDED
    assert status.result_urls == ("https://tempfile.aiquickdraw.com/…/out.mp4",)
    assert status.cost_time_ms == 15000
    assert status.progress is None


def test_the_documented_failure_record_gives_kies_code_and_message(kie, kie_api):
    kie_api.get(RECORD).mock(return_value=answer(DOC_RECORD_FAIL))

    status = kie.status("…")

    assert status.state is TaskState.FAILED
    assert (status.failure_code, status.failure_message) == ("500", "Internal server error")


def test_the_documented_null_record_means_not_ready_yet(kie, kie_api):
    kie_api.get(RECORD).mock(return_value=answer(DOC_RECORD_NULL))

    with pytest.raises(TaskNotReady) as raised:
        kie.status("task_sora-watermark-remover_1765183831860")

    assert raised.value.retryable
    assert raised.value.code == "422"


def test_the_documented_paused_answer_makes_kie_unavailable(kie, kie_api):
    kie_api.post(CREATE).mock(return_value=answer(DOC_PAUSED))

    with pytest.raises(ProviderUnavailable) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.kind == "paused"


def test_the_documented_credit_answer_gives_the_balance(kie, kie_api):
    kie_api.get(f"{KIE}/api/v1/chat/credit").mock(return_value=answer(DOC_CREDIT))

    assert kie.remaining_credits() == 2510330


@pytest.mark.parametrize("body", [DOC_CALLBACK_SUCCESS, DOC_CALLBACK_FAIL])
def test_the_documented_callbacks_name_their_task(kie, body):
    assert kie.verify_callback({}, body.encode()) == "…"


# --- the variants the contract says to accept ----------------------------------------------


def test_an_older_message_field_is_read(kie, kie_api):
    kie_api.post(CREATE).mock(
        return_value=answer('{"code": 422, "message": "input.video_url is required"}')
    )

    with pytest.raises(PermanentError) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.message == "input.video_url is required"


def test_a_snake_case_task_id_is_read(kie, kie_api):
    kie_api.post(CREATE).mock(
        return_value=answer('{"code": 200, "msg": "success", "data": {"task_id": "abc123"}}')
    )

    assert kie.start(link_task(SORA_LINK, callback_url=None)) == "abc123"


def test_an_already_parsed_response_gives_the_result_url(kie, kie_api):
    kie_api.get(RECORD).mock(
        return_value=answer(
            '{"code": 200, "msg": "success", "data": {"taskId": "t1", "state": "success",'
            ' "response": {"resultUrls": ["https://tempfile.example/out.mp4"]}}}'
        )
    )

    assert kie.status("t1").result_urls == ("https://tempfile.example/out.mp4",)


def twice(value: object) -> str:
    """JSON text of JSON text: how Kie sometimes double-encodes `param` and `resultJson`."""
    return json.dumps(json.dumps(value))


def test_double_encoded_json_fields_are_read(kie, kie_api):
    kie_api.get(RECORD).mock(
        return_value=answer(
            '{"code": 200, "msg": "success", "data": {"taskId": "t1", "state": "success",'
            f' "param": {twice({"model": "sora-watermark-remover"})},'
            f' "resultJson": {twice({"resultUrls": ["https://tempfile.example/out.mp4"]})},'
            ' "progress": 100}}'
        )
    )

    status = kie.status("t1")

    assert status.result_urls == ("https://tempfile.example/out.mp4",)
    assert status.progress == 100


@pytest.mark.parametrize("state", ["waiting", "queuing"])
def test_waiting_and_queuing_are_pending(kie, kie_api, state):
    kie_api.get(RECORD).mock(
        return_value=answer(f'{{"code": 200, "msg": "success", "data": {{"state": "{state}"}}}}')
    )

    assert kie.status("t1").state is TaskState.PENDING


def test_an_unknown_state_keeps_the_task_running(kie, kie_api):
    kie_api.get(RECORD).mock(
        return_value=answer('{"code": 200, "msg": "success", "data": {"state": "uploading"}}')
    )

    assert kie.status("t1").state is TaskState.RUNNING


@pytest.mark.parametrize("result_json", ['""', "null", '"not json"', '"{\\"resultUrls\\": []}"'])
def test_a_success_without_a_result_url_is_a_failure(kie, kie_api, result_json):
    kie_api.get(RECORD).mock(
        return_value=answer(
            '{"code": 200, "msg": "success", "data": {"taskId": "t1", "state": "success",'
            f' "resultJson": {result_json}}}}}'
        )
    )

    status = kie.status("t1")

    assert status.state is TaskState.FAILED
    assert status.failure_message == "Kie reported success but gave no result URL"


@pytest.mark.parametrize("credits_field", ["consumeCredits", "creditsConsumed"])
def test_both_credit_field_names_in_callbacks_are_accepted(kie, credits_field):
    body = f'{{"code": 200, "data": {{"taskId": "t1", "{credits_field}": 10}}}}'

    assert kie.verify_callback({}, body.encode()) == "t1"


def test_a_paused_answer_is_recognised_whatever_its_case(kie, kie_api):
    kie_api.post(CREATE).mock(
        return_value=answer('{"code": 500, "msg": "Sora: this interface is TEMPORARILY PAUSED."}')
    )

    with pytest.raises(ProviderUnavailable) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.kind == "paused"


# --- answers that are not envelopes --------------------------------------------------------


def test_a_bare_http_429_is_rate_limited_with_its_retry_after(kie, kie_api):
    kie_api.post(CREATE).mock(return_value=answer("Too Many Requests", 429, **{"Retry-After": "7"}))

    with pytest.raises(RateLimited) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.retry_after == 7.0


def test_an_envelope_429_honours_a_retry_after_header(kie, kie_api):
    kie_api.post(CREATE).mock(
        return_value=answer('{"code": 429, "msg": "Rate limited"}', 429, **{"Retry-After": "3"})
    )

    with pytest.raises(RateLimited) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.retry_after == 3.0


def test_an_html_gateway_page_is_retryable_and_quoted(kie, kie_api):
    page = "<html><head><title>503 Service Temporarily Unavailable</title></head><body></body>"
    kie_api.get(RECORD).mock(return_value=answer(page, 503))

    with pytest.raises(RetryableError) as raised:
        kie.status("t1")

    assert raised.value.code == "503"
    assert "503 Service Temporarily Unavailable" in raised.value.message


def test_a_404_without_an_envelope_is_permanent(kie, kie_api):
    kie_api.get(RECORD).mock(return_value=answer("Not Found", 404))

    with pytest.raises(PermanentError) as raised:
        kie.status("t1")

    assert raised.value.code == "404"


@pytest.mark.parametrize(
    "body", ["", "null", "[1, 2]", '{"msg": "no code"}', "\x00\xff garbage", "[" * 100_000]
)
def test_a_garbled_success_is_a_clear_retryable_error(kie, kie_api, body):
    kie_api.get(RECORD).mock(return_value=answer(body))

    with pytest.raises(RetryableError) as raised:
        kie.status("t1")

    assert raised.value.message.startswith("Kie answered HTTP 200 with")


def test_a_record_without_a_state_is_a_retryable_error(kie, kie_api):
    kie_api.get(RECORD).mock(
        return_value=answer('{"code": 200, "msg": "success", "data": {"taskId": "t1"}}')
    )

    with pytest.raises(RetryableError, match="no state"):
        kie.status("t1")


def test_a_created_task_without_an_id_is_a_retryable_error(kie, kie_api):
    kie_api.post(CREATE).mock(return_value=answer('{"code": 200, "msg": "success", "data": {}}'))

    with pytest.raises(RetryableError, match="named no task id"):
        kie.start(link_task(SORA_LINK, callback_url=None))


def test_a_network_failure_is_retryable(kie, kie_api):
    kie_api.get(RECORD).mock(side_effect=httpx.ConnectError("connection refused"))

    with pytest.raises(RetryableError, match="Could not reach Kie"):
        kie.status("t1")


def test_a_read_timeout_is_retryable(kie, kie_api):
    kie_api.get(RECORD).mock(side_effect=httpx.ReadTimeout("timed out"))

    with pytest.raises(RetryableError, match="did not answer"):
        kie.status("t1")


# --- callbacks, signed as the contract describes -------------------------------------------

SIGNING_KEY = "account-hmac-key"


@pytest.fixture
def signed_kie():
    provider = KieProvider(
        api_key=LIVE_KEY, base_url=KIE, webhook_hmac_key=SIGNING_KEY, callback_max_age_seconds=300
    )
    yield provider
    provider.close()


def test_the_signature_is_base64_hmac_sha256_of_task_id_dot_timestamp():
    # Computed independently: printf 't1.1700000000' | openssl dgst -sha256 -hmac account-hmac-key
    # -binary | base64
    assert sign_callback(SIGNING_KEY, "t1", "1700000000") == (
        "wRV4CDEq6FZTmH/AumMgVungBpT0kGwPPCamcDo9ZmY="
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Webhook-Timestamp": "1700000000"}, "not signed"),
        ({"X-Webhook-Timestamp": "soon", "X-Webhook-Signature": "x"}, "not a Unix time"),
        ({"X-Webhook-Timestamp": "1700000000", "X-Webhook-Signature": "é"}, "does not match"),
    ],
)
def test_malformed_signature_headers_are_rejected(signed_kie, time_machine, headers, reason):
    time_machine.move_to(1700000000, tick=False)

    with pytest.raises(CallbackRejected, match=reason):
        signed_kie.verify_callback(headers, b'{"data": {"taskId": "t1"}}')


def test_signature_headers_are_read_whatever_their_case(signed_kie, time_machine):
    time_machine.move_to(1700000100, tick=False)
    headers = {
        "x-webhook-timestamp": "1700000000",
        "X-WEBHOOK-SIGNATURE": sign_callback(SIGNING_KEY, "t1", "1700000000"),
    }

    assert signed_kie.verify_callback(headers, b'{"data": {"taskId": "t1"}}') == "t1"


def test_a_callback_from_the_future_beyond_the_limit_is_rejected(signed_kie, time_machine):
    time_machine.move_to(1700000000 - 301, tick=False)
    headers = {
        "X-Webhook-Timestamp": "1700000000",
        "X-Webhook-Signature": sign_callback(SIGNING_KEY, "t1", "1700000000"),
    }

    with pytest.raises(CallbackRejected, match="stale"):
        signed_kie.verify_callback(headers, b'{"data": {"taskId": "t1"}}')


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>", "not JSON"),
        (b'{"code": 200, "data": null}', "no task id"),
        (b'{"code": 200, "data": {"taskId": ""}}', "no task id"),
        (b'["t1"]', "no task id"),
    ],
)
def test_a_callback_body_without_a_task_is_rejected(kie, body, reason):
    with pytest.raises(CallbackRejected, match=reason):
        kie.verify_callback({}, body)


# --- the client's own log ------------------------------------------------------------------


def test_each_call_logs_one_line_without_the_api_key(kie, kie_api, caplog):
    kie_api.get(RECORD).mock(return_value=answer(DOC_RECORD_SUCCESS))
    caplog.set_level(logging.INFO, logger="apps.removal.kie")

    kie.status("t1")

    (record,) = caplog.records
    line = KeyValueFormatter().format(record)
    assert "method=GET path=/api/v1/jobs/recordInfo" in line
    assert "http_status=200 code=200" in line
    assert LIVE_KEY not in line
