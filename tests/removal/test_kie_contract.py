"""The real Kie client against the Kie simulator, over real sockets."""

import httpx
import pytest

from apps.removal.base import (
    CallbackRejected,
    PermanentError,
    ProviderUnavailable,
    RateLimited,
    RetryableError,
    TaskNotReady,
    TaskState,
)
from apps.simulators.kie import SAMPLE_MP4
from tests.stack import HMAC_KEY, SORA_LINK, link_task, wait_until_final


def test_a_task_succeeds_with_a_result_link_that_serves_the_sample_video(kie):
    task_id = kie.start(link_task(SORA_LINK, callback_url=None))

    status = wait_until_final(kie, task_id)

    assert status.state is TaskState.SUCCEEDED
    assert status.task_id == task_id
    assert status.failure_code == ""
    (url,) = status.result_urls
    video = httpx.get(url)
    assert video.headers["Content-Type"] == "video/mp4"
    assert video.content == SAMPLE_MP4.read_bytes()
    assert video.content[4:8] == b"ftyp"


def test_the_create_request_carries_the_documented_fields(make_simulator, make_kie):
    simulator = make_simulator()
    kie = make_kie(simulator, upload_method="oss")

    kie.start(link_task(SORA_LINK, callback_url="https://unmark.example/hooks/kie/abc/"))

    (task,) = simulator.seen()["tasks"]
    assert task["request"] == {
        "model": "sora-watermark-remover",
        "input": {"video_url": SORA_LINK, "upload_method": "oss"},
        "callBackUrl": "https://unmark.example/hooks/kie/abc/",
    }


def test_a_task_goes_from_pending_to_running_to_succeeded(make_simulator, make_kie, clock):
    simulator = make_simulator(latency=(10, 10), clock=clock)
    kie = make_kie(simulator)
    task_id = kie.start(link_task(SORA_LINK, callback_url=None))

    waiting = kie.status(task_id)
    clock.advance(3)
    queuing = kie.status(task_id)
    clock.advance(3)
    generating = kie.status(task_id)
    clock.advance(4)
    done = kie.status(task_id)

    assert [s.state for s in (waiting, queuing, generating, done)] == [
        TaskState.PENDING,
        TaskState.PENDING,
        TaskState.RUNNING,
        TaskState.SUCCEEDED,
    ]
    assert generating.progress is None  # Kie documents no progress for this model
    assert done.cost_time_ms == 10_000


def test_a_failed_task_reports_kies_failure_code_and_message(make_simulator, make_kie):
    kie = make_kie(make_simulator(failure_rate=1))
    task_id = kie.start(link_task(SORA_LINK, callback_url=None))

    status = wait_until_final(kie, task_id)

    assert status.state is TaskState.FAILED
    assert status.failure_code == "500"
    assert status.failure_message == "Internal server error"
    assert status.result_urls == ()


# Every envelope code of the contract table, and what the client makes of it.
CODE_TABLE = [
    (400, PermanentError, ""),
    (401, ProviderUnavailable, "unauthorized"),
    (402, ProviderUnavailable, "out_of_credits"),
    (404, PermanentError, ""),
    (408, PermanentError, ""),
    (422, PermanentError, ""),
    (429, RateLimited, ""),
    (433, ProviderUnavailable, "quota"),
    (455, ProviderUnavailable, "maintenance"),
    (500, RetryableError, ""),
    (501, PermanentError, ""),
    (505, ProviderUnavailable, "disabled"),
]


@pytest.mark.parametrize(("code", "error_class", "kind"), CODE_TABLE)
def test_every_envelope_code_becomes_its_typed_error(
    make_simulator, make_kie, code, error_class, kind
):
    kie = make_kie(make_simulator(forced_code=code))

    with pytest.raises(error_class) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    error = raised.value
    assert type(error) is error_class
    assert error.code == str(code)
    assert error.retryable is (code in (429, 500))
    if kind:
        assert error.kind == kind
    assert error.message  # Kie's own words, for the job's history and the operator


def test_a_wrong_api_key_is_an_unauthorized_provider(simulator, make_kie):
    kie = make_kie(simulator, api_key="not-the-key")

    with pytest.raises(ProviderUnavailable) as raised:
        kie.remaining_credits()

    assert raised.value.kind == "unauthorized"
    assert not raised.value.retryable


def test_an_empty_kie_balance_stops_submissions(make_simulator, make_kie):
    kie = make_kie(make_simulator(credits=9))

    with pytest.raises(ProviderUnavailable) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.kind == "out_of_credits"
    assert raised.value.code == "402"


def test_a_link_kie_rejects_is_a_permanent_error_with_kies_reason(kie):
    with pytest.raises(PermanentError) as raised:
        kie.start(link_task("https://example.com/video.mp4", callback_url=None))

    assert raised.value.code == "422"
    assert "sora.chatgpt.com" in raised.value.message


def test_an_unknown_task_is_a_permanent_error(kie):
    with pytest.raises(PermanentError) as raised:
        kie.status("0123456789abcdef0123456789abcdef")

    assert raised.value.code == "404"
    assert raised.value.message == "Task not found"


def test_a_query_without_a_task_id_is_a_permanent_error(kie):
    with pytest.raises(PermanentError) as raised:
        kie.status("")

    assert raised.value.code == "400"
    assert raised.value.message == "taskId parameter is required"


def test_a_rate_limited_create_succeeds_once_kies_window_has_passed(
    make_simulator, make_kie, clock
):
    kie = make_kie(make_simulator(rate_limit=2, clock=clock))
    kie.start(link_task(SORA_LINK, callback_url=None))
    kie.start(link_task(SORA_LINK, callback_url=None))

    with pytest.raises(RateLimited) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))
    clock.advance(10)
    task_id = kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.code == "429"
    assert raised.value.retryable
    assert kie.status(task_id).state is TaskState.PENDING


def test_a_paused_kie_is_unavailable_and_not_worth_retrying(make_simulator, make_kie):
    kie = make_kie(make_simulator(paused=True))

    with pytest.raises(ProviderUnavailable) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.kind == "paused"
    assert raised.value.code == "500"
    assert raised.value.message == "This interface is temporarily paused"
    assert not raised.value.retryable


def test_a_record_that_is_not_there_yet_is_retried_briefly(make_simulator, make_kie, clock):
    kie = make_kie(make_simulator(null_record_seconds=1, latency=(5, 5), clock=clock))
    task_id = kie.start(link_task(SORA_LINK, callback_url=None))

    with pytest.raises(TaskNotReady) as raised:
        kie.status(task_id)
    clock.advance(1)
    status = kie.status(task_id)

    assert raised.value.retryable
    assert raised.value.retry_after == 2.0
    assert status.state is TaskState.PENDING


def test_a_truncated_json_answer_is_a_retryable_error_that_quotes_it(make_simulator, make_kie):
    kie = make_kie(make_simulator(api_fault="malformed"))

    with pytest.raises(RetryableError) as raised:
        kie.start(link_task(SORA_LINK, callback_url=None))

    assert raised.value.code == "200"
    assert "not a Kie answer" in raised.value.message
    assert '"taskId":' in raised.value.message


def test_an_html_error_page_is_a_retryable_error_that_quotes_it(make_simulator, make_kie):
    kie = make_kie(make_simulator(api_fault="html"))

    with pytest.raises(RetryableError) as raised:
        kie.status("0123456789abcdef0123456789abcdef")

    assert raised.value.code == "502"
    assert "HTTP 502" in raised.value.message
    assert "502 Bad Gateway" in raised.value.message
    assert "<" not in raised.value.message


def test_a_slow_answer_times_out_as_a_retryable_error(make_simulator, make_kie):
    kie = make_kie(make_simulator(api_delay_seconds=0.5), timeout_seconds=0.1)

    with pytest.raises(RetryableError) as raised:
        kie.remaining_credits()

    assert "did not answer" in raised.value.message


def test_an_unreachable_kie_is_a_retryable_error(make_simulator, make_kie):
    simulator = make_simulator()
    kie = make_kie(simulator)
    simulator.stop()

    with pytest.raises(RetryableError) as raised:
        kie.remaining_credits()

    assert "Could not reach Kie" in raised.value.message


def test_each_success_costs_ten_kie_credits(make_simulator, make_kie):
    kie = make_kie(make_simulator(credits=1000))

    wait_until_final(kie, kie.start(link_task(SORA_LINK, callback_url=None)))

    assert kie.remaining_credits() == 990


def test_a_failed_task_costs_no_kie_credits(make_simulator, make_kie):
    kie = make_kie(make_simulator(credits=1000, failure_rate=1))

    wait_until_final(kie, kie.start(link_task(SORA_LINK, callback_url=None)))

    assert kie.remaining_credits() == 1000


# --- callbacks ------------------------------------------------------------------------------


def test_a_signed_callback_names_its_task(make_simulator, make_kie, callbacks):
    simulator = make_simulator(hmac_key=HMAC_KEY)
    kie = make_kie(simulator, webhook_hmac_key=HMAC_KEY)
    task_id = kie.start(link_task(SORA_LINK, callback_url=callbacks.url))

    callback = callbacks.next()

    assert kie.verify_callback(callback.headers, callback.body) == task_id
    assert callback.payload["code"] == 200
    assert callback.payload["data"]["state"] == "success"
    assert callback.payload["data"]["consumeCredits"] == 10


def test_a_failed_task_calls_back_with_the_documented_failure(make_simulator, make_kie, callbacks):
    kie = make_kie(make_simulator(failure_rate=1))
    task_id = kie.start(link_task(SORA_LINK, callback_url=callbacks.url))

    callback = callbacks.next()

    assert kie.verify_callback(callback.headers, callback.body) == task_id
    assert callback.payload["code"] == 501
    assert callback.payload["msg"] == "Playground task failed."
    assert callback.payload["data"]["failCode"] == "500"
    assert callback.payload["data"]["consumeCredits"] == 0


def test_a_callback_signed_with_another_key_is_rejected(make_simulator, make_kie, callbacks):
    kie = make_kie(make_simulator(hmac_key="someone-elses-key"), webhook_hmac_key=HMAC_KEY)
    kie.start(link_task(SORA_LINK, callback_url=callbacks.url))

    callback = callbacks.next()

    with pytest.raises(CallbackRejected, match="signature does not match"):
        kie.verify_callback(callback.headers, callback.body)


def test_a_callback_whose_body_names_another_task_is_rejected(make_simulator, make_kie, callbacks):
    kie = make_kie(make_simulator(hmac_key=HMAC_KEY), webhook_hmac_key=HMAC_KEY)
    kie.start(link_task(SORA_LINK, callback_url=callbacks.url))
    callback = callbacks.next()

    forged = callback.body.replace(b'"taskId": "', b'"taskId": "f')

    with pytest.raises(CallbackRejected, match="signature does not match"):
        kie.verify_callback(callback.headers, forged)


def test_a_stale_callback_is_rejected(make_simulator, make_kie, callbacks, time_machine):
    kie = make_kie(
        make_simulator(hmac_key=HMAC_KEY), webhook_hmac_key=HMAC_KEY, callback_max_age_seconds=300
    )
    kie.start(link_task(SORA_LINK, callback_url=callbacks.url))
    callback = callbacks.next()

    time_machine.move_to(int(callback.headers["X-Webhook-Timestamp"]) + 301, tick=False)

    with pytest.raises(CallbackRejected, match="stale"):
        kie.verify_callback(callback.headers, callback.body)


def test_an_unsigned_callback_is_rejected_when_a_key_is_configured(simulator, make_kie, callbacks):
    kie = make_kie(simulator, webhook_hmac_key=HMAC_KEY)
    kie.start(link_task(SORA_LINK, callback_url=callbacks.url))
    callback = callbacks.next()

    assert "X-Webhook-Signature" not in callback.headers
    with pytest.raises(CallbackRejected, match="not signed"):
        kie.verify_callback(callback.headers, callback.body)


def test_without_a_key_an_unsigned_callback_names_its_task(kie, callbacks):
    task_id = kie.start(link_task(SORA_LINK, callback_url=callbacks.url))

    callback = callbacks.next()

    assert kie.verify_callback(callback.headers, callback.body) == task_id
