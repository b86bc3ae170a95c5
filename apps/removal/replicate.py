"""The Replicate client: SoraWatermarkCleaner hosted on Replicate, elastic capacity for files.

Replicate's HTTP API (replicate.com/docs/reference/http, read 2026-12):

- `POST /v1/predictions` `{"version", "input", "webhook", "webhook_events_filter"}` for a
  pinned version, or `POST /v1/models/{owner}/{name}/predictions` for the model's current one;
  `201` with the prediction object.
- `GET /v1/predictions/{id}`: `status` is starting (queued or booting: a cold start sits here,
  sometimes for minutes), processing, succeeded, failed or canceled; `output`, `error`, `logs`,
  `metrics.predict_time` (seconds of compute, what is billed), `webhook` as sent.
- `POST /v1/predictions/{id}/cancel`.
- `GET /v1/webhooks/default/secret` → `{"key": "whsec_…"}`: webhooks are signed the Standard
  Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
- 401 bad token, 402 out of credit, 404 unknown model or prediction, 422 invalid input, 429
  `{"detail": "Request was throttled. Your rate limit resets in ~30s."}`.

The model, `uglyrobot/sora2-watermark-remover`, takes one input, `video` (a file URL, which
Replicate fetches when the prediction starts), and outputs one URL: the cleaned MP4. Inputs and
outputs are deleted after about an hour, so the pipeline copies the result at once.

Every failure becomes one of the errors of `base.py`. Nothing here sleeps.
"""

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from django.core.cache import cache
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from apps.removal import ratelimit
from apps.removal.backoff import parse_retry_after
from apps.removal.base import (
    CallbackRejected,
    CallbackReplayed,
    InputKind,
    NoAnswer,
    PermanentError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RetryableError,
    TaskInput,
    TaskState,
    TaskStatus,
)
from apps.removal.hosted import HostedProvider

logger = logging.getLogger(__name__)

# The model's input field for the video (its input schema: `video`, "Video file to process").
INPUT_FIELD = "video"
WEBHOOK_EVENTS = ["start", "completed"]
CREATE_WINDOW_SECONDS = 60.0
SECRET_PATH = "/v1/webhooks/default/secret"  # noqa: S105 (a path, not a secret)
# Signed webhook ids are remembered this long: longer than the 5 minutes either side of now in
# which Standard Webhooks accepts a timestamp, so a replay is always caught.
WEBHOOK_ID_MEMORY_SECONDS = 11 * 60

_STATES = {
    "starting": TaskState.PENDING,  # queued, or a cold start booting the model
    "processing": TaskState.RUNNING,
    "succeeded": TaskState.SUCCEEDED,
    "failed": TaskState.FAILED,
    "canceled": TaskState.FAILED,
}
# A tqdm bar, as Cog models print them into `logs`: " 45%|████▌     | 45/100".
_PROGRESS = re.compile(r"(\d{1,3})%\|")
# Replicate's 429 says when its limit resets in the body, not in a header.
_RESETS_IN = re.compile(r"resets in ~?(\d+(?:\.\d+)?)\s*s")


class ReplicateProvider(HostedProvider):
    """One Replicate account: a pooled HTTP client with a bearer token and explicit timeouts."""

    name = "replicate"
    label = "Replicate"
    software_agent = "SoraWatermarkCleaner on Replicate"
    cleaned_by = "on Replicate"
    waits_for = "Replicate to start a machine"
    # Its webhooks name the prediction: a start whose answer was lost is adopted.
    calls_back = True
    # A prediction can be canceled; what it ran so far is still billed.
    stops_tasks = True

    def __init__(
        self,
        *,
        api_token: str,
        base_url: str,
        model: str,
        price_per_second: Decimal,
        webhook_secret: str = "",
        input_url_seconds: int = 1800,
        timeout_seconds: float = 30.0,
        create_limit: int = 600,
        simulated: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            token=api_token,
            base_url=base_url,
            timeout_seconds=timeout_seconds,
            simulated=simulated,
            transport=transport,
        )
        # Optional capacity: without a token it takes nothing, and nothing is sent to it.
        self.accepts = frozenset({InputKind.FILE}) if api_token else frozenset()
        self._api_token = api_token
        self._model, _, self._version = model.partition(":")
        self._price_per_second = price_per_second
        self._webhook_secret = webhook_secret
        self._secret_lock = threading.Lock()
        self._input_url_seconds = input_url_seconds
        self._create_limit = create_limit

    # --- the protocol ---------------------------------------------------------------------
    def start(self, task: TaskInput) -> str:
        if task.kind not in self.accepts or task.signed_url is None:
            raise PermanentError("Replicate takes only uploaded files.")
        payload: dict[str, Any] = {"input": {INPUT_FIELD: task.signed_url(self._input_url_seconds)}}
        if self._version:
            path = "/v1/predictions"
            payload["version"] = self._version
        else:
            path = f"/v1/models/{self._model}/predictions"
        if task.callback_url:
            payload["webhook"] = task.callback_url
            payload["webhook_events_filter"] = WEBHOOK_EVENTS
        prediction = self._call("POST", path, payload=payload, sent_means_maybe_created=True)
        prediction_id = _prediction_id(prediction)
        if not prediction_id:
            # Retrying may start (and bill) a second prediction; the webhook will name this one.
            raise NoAnswer(f"Replicate answered without a prediction id: {prediction!r:.120}")
        return prediction_id

    def status(self, task_id: str) -> TaskStatus:
        prediction = self._call("GET", f"/v1/predictions/{task_id}", missing_is_permanent=True)
        if not isinstance(prediction, dict):
            raise RetryableError(f"Replicate's prediction is not an object: {prediction!r:.120}")
        return prediction_status(task_id, prediction, price_per_second=self._price_per_second)

    def cancel(self, task_id: str) -> None:
        """Stops a prediction (its job was canceled): what it ran so far is still billed."""
        self._call("POST", f"/v1/predictions/{task_id}/cancel", missing_is_permanent=True)

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        """Checks the Standard Webhooks signature, then refuses a webhook seen before.

        Raises ProviderError when the signing secret cannot be fetched (Replicate sends the
        webhook again later)."""
        try:
            payload = Webhook(self.signing_secret()).verify(body, dict(headers.items()))
        except (WebhookVerificationError, ValueError) as exc:
            # ValueError: a malformed signature list, base64 or body encoding.
            raise CallbackRejected(f"the webhook signature does not verify: {exc}") from None
        prediction_id = _prediction_id(payload)
        if not prediction_id:
            raise CallbackRejected("the webhook names no prediction id")
        # Only verified ids are remembered, so forged requests cannot block real ones.
        webhook_id = hashlib.sha256(headers["webhook-id"].encode()).hexdigest()
        if not cache.add(f"hooks:replicate:{webhook_id}", True, timeout=WEBHOOK_ID_MEMORY_SECONDS):
            raise CallbackReplayed("this webhook was already received")
        return prediction_id

    def signing_secret(self) -> str:
        """The account's webhook secret: configured, or asked of Replicate once per process."""
        with self._secret_lock:
            if not self._webhook_secret:
                answer = self._call("GET", SECRET_PATH)
                key = answer.get("key") if isinstance(answer, dict) else None
                if not isinstance(key, str) or not key.startswith("whsec_"):
                    raise CallbackRejected("Replicate gave no webhook signing secret")
                self._webhook_secret = key
            return self._webhook_secret

    def claim_starts(self, wanted: int, *, in_hand: int = 0) -> tuple[int, float]:
        return ratelimit.claim_starts(
            self._api_token,
            wanted,
            limit=self._create_limit,
            window_seconds=CREATE_WINDOW_SECONDS,
        )

    def starting(self, claimed_at: float) -> None:
        ratelimit.mark_sent(
            self._api_token,
            claimed_at,
            limit=self._create_limit,
            window_seconds=CREATE_WINDOW_SECONDS,
        )

    def seconds_until_start(self, *, in_hand: int = 0) -> float:
        return ratelimit.seconds_until_free(
            self._api_token, limit=self._create_limit, window_seconds=CREATE_WINDOW_SECONDS
        )

    def starts_per_second(self) -> float:
        return self._create_limit / (CREATE_WINDOW_SECONDS + ratelimit.MARGIN_SECONDS)

    def probe(self) -> None:
        # Reading the model answers 401 for a bad token and 404 once the model is gone.
        self._call("GET", f"/v1/models/{self._model}")

    # --- plumbing -------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        payload: dict[str, Any] | None = None,
        sent_means_maybe_created: bool = False,
        missing_is_permanent: bool = False,
    ) -> Any:
        """Sends one request and returns its JSON body, or raises a provider error.

        With `sent_means_maybe_created`, a request that may have reached Replicate but got no
        answer raises `NoAnswer`. With `missing_is_permanent`, 404 means that one prediction is
        unknown (not that the model is gone).
        """
        started = time.monotonic()
        try:
            response = self._http.request(method, path, json=payload, timeout=self._timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            _log_call(method, path, started, error=type(exc).__name__)
            raise RetryableError(f"Could not reach Replicate ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            _log_call(method, path, started, error=type(exc).__name__)
            error = NoAnswer if sent_means_maybe_created else RetryableError
            raise error(f"Replicate's answer to {method} {path} was lost ({exc!r:.80})") from exc
        _log_call(method, path, started, http_status=response.status_code)
        if response.is_success:
            try:
                return json.loads(response.content)
            except (ValueError, RecursionError):
                error = NoAnswer if sent_means_maybe_created else RetryableError
                raise error(
                    f"Replicate answered {method} {path} with a body that is not JSON"
                ) from None
        raise _error_for(response, missing_is_permanent=missing_is_permanent)


def prediction_status(
    task_id: str, prediction: dict[str, Any], *, price_per_second: Decimal
) -> TaskStatus:
    """A prediction object (as `GET /v1/predictions/{id}` and webhooks give it) as a status."""
    raw = str(prediction.get("status") or "").strip().lower()
    state = _STATES.get(raw)
    if state is None:
        # A status this client does not know is not final: keep following until the deadline.
        logger.warning("replicate unknown status", extra={"task_id": task_id, "status": raw})
        state = TaskState.RUNNING
    predict_time = _predict_time(prediction.get("metrics"))
    common: dict[str, Any] = {
        "cost_time_ms": None if predict_time is None else round(predict_time * 1000),
        "cost_micros": None
        if predict_time is None
        else cost_micros(predict_time, price_per_second),
        "progress": _progress(prediction.get("logs")),
        "callback_url": str(prediction.get("webhook") or ""),
    }
    if state is TaskState.SUCCEEDED:
        urls = _output_urls(prediction.get("output"))
        if not urls:
            return TaskStatus(
                task_id,
                TaskState.FAILED,
                failure_code="no_result",
                failure_message="Replicate reported success but gave no video URL",
                **common,
            )
        return TaskStatus(task_id, state, result_urls=urls, **common)
    if state is TaskState.FAILED:
        canceled = raw == "canceled"
        return TaskStatus(
            task_id,
            state,
            failure_code="canceled" if canceled else "failed",
            failure_message="the prediction was canceled"
            if canceled
            else str(prediction.get("error") or "Replicate reported a failure without details"),
            **common,
        )
    return TaskStatus(task_id, state, **common)


def cost_micros(predict_time: float, price_per_second: Decimal) -> int:
    """Seconds of compute at the price per second, in millionths of a dollar (rounded)."""
    micros = Decimal(str(predict_time)) * price_per_second * 1_000_000
    return int(micros.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _error_for(response: httpx.Response, *, missing_is_permanent: bool) -> ProviderError:
    status = response.status_code
    detail = _detail(response)
    message = f"Replicate answered HTTP {status}: {detail}" if detail else f"HTTP {status}"
    code = str(status)
    if status in (401, 403):
        return ProviderUnavailable(
            f"Replicate refused the API token ({message})", code=code, kind="unauthorized"
        )
    if status == 402:
        return ProviderUnavailable(message, code=code, kind="out_of_credits")
    if status == 404 and not missing_is_permanent:
        return ProviderUnavailable(
            f"The Replicate model is gone or not visible ({message})", code=code, kind="model_gone"
        )
    if status == 429:
        hint = parse_retry_after(response.headers.get("Retry-After", ""))
        if hint is None and (match := _RESETS_IN.search(detail)):
            hint = float(match.group(1))
        return RateLimited(message, code=code, retry_after=hint)
    if status >= 500:
        return RetryableError(
            message,
            code=code,
            retry_after=parse_retry_after(response.headers.get("Retry-After", "")),
        )
    return PermanentError(message, code=code)


def _detail(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return " ".join(response.text[:160].split())
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail)[:200] if detail else ""


def _prediction_id(prediction: object) -> str:
    value = prediction.get("id") if isinstance(prediction, dict) else None
    return value.strip() if isinstance(value, str) else ""


def _output_urls(output: object) -> tuple[str, ...]:
    # This model outputs one URL; Cog models may also output a list of them.
    items = output if isinstance(output, list) else [output]
    return tuple(
        item for item in items if isinstance(item, str) and item.startswith(("https://", "http://"))
    )


def _predict_time(metrics: object) -> float | None:
    value = metrics.get("predict_time") if isinstance(metrics, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _progress(logs: object) -> int | None:
    if not isinstance(logs, str):
        return None
    found = _PROGRESS.findall(logs[-2000:])
    return min(100, int(found[-1])) if found else None


def _log_call(
    method: str, path: str, started: float, *, http_status: int | None = None, error: str = ""
) -> None:
    # One line per call; the token lives only in the client's default headers, never here.
    elapsed_ms = round((time.monotonic() - started) * 1000)
    context: dict[str, object] = {"method": method, "path": path, "elapsed_ms": elapsed_ms}
    if error:
        logger.warning("replicate call failed", extra={**context, "error": error})
    else:
        logger.info("replicate call", extra={**context, "http_status": http_status})
