"""The Kie.ai client: Sora 2 watermark removal through Kie's Market API.

Contract: shared/kie-api.md. Kie wraps every answer in an envelope `{"code", "msg", "data"}` and
often answers HTTP 200 for a failure, so the envelope code decides. The HTTP status matters only
when the body is not an envelope (a proxy's HTML page, a bare 429, a truncated body).

Every failure becomes one of the errors of `base.py`, which tell the caller whether retrying can
help. Nothing here sleeps: rate limits and not-yet-ready records are raised with a hint.
"""

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import httpx

from apps.removal import ratelimit
from apps.removal.backoff import parse_retry_after
from apps.removal.base import (
    CallbackRejected,
    InputKind,
    NoAnswer,
    PermanentError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RetryableError,
    TaskInput,
    TaskNotReady,
    TaskState,
    TaskStatus,
)
from apps.removal.hosted import HostedProvider

logger = logging.getLogger(__name__)

MODEL = "sora-watermark-remover"
KIE_CREDITS_PER_VIDEO = 10
CREATE_PATH = "/api/v1/jobs/createTask"
RECORD_PATH = "/api/v1/jobs/recordInfo"
CREDIT_PATH = "/api/v1/chat/credit"

# Kie answers a paused model with code 500 and this phrase; it is not a transient error.
PAUSED_PHRASE = "temporarily paused"
# Kie asks to "retry briefly" when a just-created task has no record yet.
NOT_READY_RETRY_SECONDS = 2.0

_STATES = {
    "waiting": TaskState.PENDING,
    "queuing": TaskState.PENDING,
    "generating": TaskState.RUNNING,
    "success": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
}
# Envelope codes that mean Kie will not take work until an operator acts.
_UNAVAILABLE_KINDS = {
    401: "unauthorized",
    402: "out_of_credits",
    433: "quota",
    455: "maintenance",
    505: "disabled",
}
_PERMANENT_CODES = {400, 404, 408, 422, 501}


@dataclass(frozen=True)
class _Envelope:
    code: int
    message: str
    data: Any


class KieProvider(HostedProvider):
    """One Kie account: a pooled HTTP client with a bearer key and explicit timeouts."""

    name = "kie"
    label = "Kie"
    software_agent = "Kie.ai Sora 2 Watermark Remover"
    cleaned_by = "by Kie.ai"
    waits_for = "Kie.ai to start it"
    accepts = frozenset({InputKind.LINK})
    # A callback names its task: a start whose answer was lost is adopted, not sent twice.
    calls_back = True
    # Kie may repeat a callback: those within a few seconds make one status query.
    callback_window_seconds = 5
    callback_received: ClassVar[dict[str, object]] = {"code": 200, "msg": "success"}
    # Paid in advance: staff watch the account's credits.
    keeps_a_balance = True

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        upload_method: str = "s3",
        webhook_hmac_key: str = "",
        callback_max_age_seconds: int = 300,
        timeout_seconds: float = 30.0,
        create_limit: int = ratelimit.CREATE_LIMIT,
        cost_micros: int | None = None,
        simulated: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            token=api_key,
            base_url=base_url,
            timeout_seconds=timeout_seconds,
            simulated=simulated,
            transport=transport,
        )
        self._api_key = api_key
        # Kie's fixed price for one remover run, in millionths of a dollar (None: not known).
        self._cost_micros = cost_micros
        self._create_limit = create_limit
        self._upload_method = upload_method
        self._webhook_hmac_key = webhook_hmac_key
        self._callback_max_age_seconds = callback_max_age_seconds

    def start(self, task: TaskInput) -> str:
        if task.kind not in self.accepts:
            raise PermanentError("Kie takes only Sora share links, not uploaded files.")
        payload: dict[str, Any] = {
            "model": MODEL,
            "input": {"video_url": task.link, "upload_method": self._upload_method},
        }
        if task.callback_url:
            payload["callBackUrl"] = task.callback_url
        data = self._call("POST", CREATE_PATH, payload=payload, sent_means_maybe_created=True)
        task_id = _task_id(data)
        if not task_id:
            # Retrying may create a second task; failing would leave a paid task nobody fetches.
            raise NoAnswer(f"Kie accepted the task but named no task id: {data!r:.120}")
        return task_id

    def status(self, task_id: str) -> TaskStatus:
        data = self._call("GET", RECORD_PATH, params={"taskId": task_id})
        if not isinstance(data, dict):
            raise RetryableError(f"Kie's task record is not an object: {data!r:.120}")
        status = _task_status(task_id, data)
        if status.state == TaskState.SUCCEEDED:
            # A fixed price per finished run: Kie's record carries no price of its own.
            return replace(status, cost_micros=self._cost_micros)
        return status

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise CallbackRejected("the callback body is not JSON") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        task_id = _task_id(data)
        if not task_id:
            raise CallbackRejected("the callback names no task id (data.taskId)")
        if self._webhook_hmac_key:
            self._check_signature(task_id, {k.lower(): v for k, v in headers.items()})
        return task_id

    def claim_starts(self, wanted: int, *, in_hand: int = 0) -> tuple[int, float]:
        return ratelimit.claim_starts(self._api_key, wanted, limit=self._create_limit)

    def starting(self, claimed_at: float) -> None:
        ratelimit.mark_sent(self._api_key, claimed_at, limit=self._create_limit)

    def seconds_until_start(self, *, in_hand: int = 0) -> float:
        return ratelimit.seconds_until_free(self._api_key, limit=self._create_limit)

    def starts_per_second(self) -> float:
        return self._create_limit / (ratelimit.WINDOW_SECONDS + ratelimit.MARGIN_SECONDS)

    def probe(self) -> None:
        # The cheapest call there is: it answers 455 in maintenance, 401 for a bad key.
        if self.remaining_credits() < KIE_CREDITS_PER_VIDEO:
            raise ProviderUnavailable("The Kie account is out of credits.", kind="out_of_credits")

    def remaining_credits(self) -> int:
        data = self._call("GET", CREDIT_PATH)
        credits = _whole_number(data)
        if credits is None:
            raise RetryableError(f"Kie's credit balance is not a number: {data!r:.120}")
        return credits

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: dict[str, Any] | None = None,
        sent_means_maybe_created: bool = False,
    ) -> Any:
        """Sends one request and returns the envelope's `data`, or raises a provider error.

        With `sent_means_maybe_created`, a request that may have reached Kie but got no
        answer raises `NoAnswer`: the task may exist, so the caller must not simply resend.
        """
        started = time.monotonic()
        try:
            response = self._http.request(
                method, path, params=params, json=payload, timeout=self._timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Kie: trying again is always safe.
            _log_call(method, path, started, error=type(exc).__name__)
            raise RetryableError(f"Could not reach Kie ({type(exc).__name__}: {exc})") from exc
        except httpx.HTTPError as exc:
            _log_call(method, path, started, error=type(exc).__name__)
            error = NoAnswer if sent_means_maybe_created else RetryableError
            if isinstance(exc, httpx.TimeoutException):
                raise error(f"Kie did not answer {method} {path} in time") from exc
            raise error(f"Kie's answer was lost ({type(exc).__name__}: {exc})") from exc

        envelope = _parse_envelope(response.content)
        _log_call(
            method,
            path,
            started,
            http_status=response.status_code,
            code=envelope.code if envelope else None,
        )
        if envelope is None or (envelope.code == 200 and not response.is_success):
            raise _error_for_http_status(response)
        if envelope.code != 200:
            raise _error_for_code(envelope.code, envelope.message, _retry_after(response))
        return envelope.data

    def _check_signature(self, task_id: str, headers: Mapping[str, str]) -> None:
        timestamp = headers.get("x-webhook-timestamp", "").strip()
        signature = headers.get("x-webhook-signature", "").strip()
        if not timestamp or not signature:
            raise CallbackRejected("the callback is not signed (X-Webhook-Signature missing)")
        if not timestamp.isdigit():
            raise CallbackRejected("X-Webhook-Timestamp is not a Unix time")
        age = abs(time.time() - int(timestamp))
        if age > self._callback_max_age_seconds:
            raise CallbackRejected(
                f"the callback is stale: signed {age:.0f} s from now "
                f"(at most {self._callback_max_age_seconds} s)"
            )
        expected = sign_callback(self._webhook_hmac_key, task_id, timestamp)
        if not hmac.compare_digest(expected.encode(), signature.encode(errors="replace")):
            raise CallbackRejected("the callback signature does not match")


def sign_callback(hmac_key: str, task_id: str, timestamp: str) -> str:
    """Kie's `X-Webhook-Signature`: base64(HMAC-SHA256(key, taskId + "." + timestamp))."""
    digest = hmac.new(hmac_key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _parse_envelope(content: bytes) -> _Envelope | None:
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    code = _whole_number(body.get("code"))
    if code is None:
        return None
    # Older Kie pages name the message `message`.
    message = body.get("msg") or body.get("message") or ""
    return _Envelope(code, str(message), body.get("data"))


def _error_for_code(code: int, message: str, retry_after: float | None) -> ProviderError:
    text = message or f"Kie answered code {code}"
    tag = str(code)
    if code == 422 and message.strip().lower() == "recordinfo is null":
        return TaskNotReady(text, code=tag, retry_after=retry_after or NOT_READY_RETRY_SECONDS)
    if code == 500 and PAUSED_PHRASE in message.lower():
        return ProviderUnavailable(text, code=tag, kind="paused")
    if code in _UNAVAILABLE_KINDS:
        return ProviderUnavailable(text, code=tag, kind=_UNAVAILABLE_KINDS[code])
    if code == 429:
        return RateLimited(text, code=tag, retry_after=retry_after)
    if code >= 500 and code not in _PERMANENT_CODES:
        return RetryableError(text, code=tag, retry_after=retry_after)
    return PermanentError(text, code=tag)


def _error_for_http_status(response: httpx.Response) -> ProviderError:
    """For an answer that is not a Kie envelope: judge by the HTTP status, quote the body."""
    status = response.status_code
    excerpt = _excerpt(response.text)
    body = f"a body that is not a Kie answer: {excerpt!r}" if excerpt else "an empty body"
    message = f"Kie answered HTTP {status} with {body}"
    if status == 429:
        return RateLimited(message, code="429", retry_after=_retry_after(response))
    if status >= 500 or response.is_success:
        return RetryableError(message, code=str(status), retry_after=_retry_after(response))
    return PermanentError(message, code=str(status))


def _task_status(task_id: str, data: dict[str, Any]) -> TaskStatus:
    raw_state = str(data.get("state") or "").strip().lower()
    if not raw_state:
        raise RetryableError(f"Kie's task record has no state: {data!r:.120}")
    state = _STATES.get(raw_state)
    if state is None:
        # A state this client does not know is not final: keep polling until the job's deadline.
        logger.warning("kie unknown task state", extra={"task_id": task_id, "state": raw_state})
        state = TaskState.RUNNING
    cost_time_ms = _whole_number(data.get("costTime"))
    progress = _whole_number(data.get("progress"))  # documented for generation models only
    echoed = _echoed_callback_url(data)

    if state is TaskState.SUCCEEDED:
        urls = _result_urls(data)
        if not urls:
            # Nothing to download: the job must fail (and refund) rather than wait forever.
            return TaskStatus(
                task_id,
                TaskState.FAILED,
                failure_code="no_result",
                failure_message="Kie reported success but gave no result URL",
                cost_time_ms=cost_time_ms,
                progress=progress,
                callback_url=echoed,
            )
        return TaskStatus(
            task_id,
            state,
            result_urls=urls,
            cost_time_ms=cost_time_ms,
            progress=progress,
            callback_url=echoed,
        )
    if state is TaskState.FAILED:
        return TaskStatus(
            task_id,
            state,
            failure_code=str(data.get("failCode") or ""),
            failure_message=str(data.get("failMsg") or "Kie reported a failure without details"),
            cost_time_ms=cost_time_ms,
            progress=progress,
        )
    return TaskStatus(
        task_id, state, cost_time_ms=cost_time_ms, progress=progress, callback_url=echoed
    )


def _echoed_callback_url(data: dict[str, Any]) -> str:
    """The `callBackUrl` of the original request, which Kie echoes in `param`."""
    param = _decode_json_text(data.get("param"))
    url = param.get("callBackUrl") if isinstance(param, dict) else None
    return url if isinstance(url, str) else ""


def _result_urls(data: dict[str, Any]) -> tuple[str, ...]:
    # Newer answers carry `response` already parsed; `resultJson` is JSON text.
    for candidate in (data.get("response"), data.get("resultJson")):
        parsed = _decode_json_text(candidate)
        urls = parsed.get("resultUrls") if isinstance(parsed, dict) else None
        if isinstance(urls, list):
            found = tuple(
                url
                for url in urls
                if isinstance(url, str) and url.startswith(("https://", "http://"))
            )
            if found:
                return found
    return ()


def _decode_json_text(value: object) -> object:
    """Kie sends some fields (`resultJson`, `param`) as JSON text, sometimes encoded twice."""
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def _task_id(data: object) -> str:
    if not isinstance(data, dict):
        return ""
    value = data.get("taskId") or data.get("task_id")
    return str(value).strip() if isinstance(value, str | int) else ""


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After", ""))


def _excerpt(text: str, limit: int = 160) -> str:
    """The readable start of a body: tags and runs of white space removed."""
    without_tags = re.sub(r"<[^>]*>", " ", text[:4000])
    collapsed = " ".join(without_tags.split())
    return collapsed[:limit] + ("…" if len(collapsed) > limit else "")


def _log_call(
    method: str,
    path: str,
    started: float,
    *,
    http_status: int | None = None,
    code: int | None = None,
    error: str = "",
) -> None:
    # One line per call; the API key lives only in the client's default headers, never here.
    elapsed_ms = round((time.monotonic() - started) * 1000)
    context: dict[str, object] = {"method": method, "path": path, "elapsed_ms": elapsed_ms}
    if error:
        logger.warning("kie call failed", extra={**context, "error": error})
        return
    logger.info("kie call", extra={**context, "http_status": http_status, "code": code})
