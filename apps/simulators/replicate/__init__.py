"""The Replicate simulator: Replicate's prediction API for the SoraWatermarkCleaner model, on
loopback.

`make run` starts it (`manage.py replicate_simulator`) so file jobs can go to "Replicate" with no
account, and tests start it on an ephemeral port to run the real client over real sockets. Like
Replicate it:

- takes `POST /v1/predictions` (a pinned `version`: the 64-character id, or
  `owner/name:id` as the official client sends it) and `POST /v1/models/{owner}/{name}/
  predictions`, with a bearer token (401 otherwise), input `video` (a file URL), `webhook` and
  `webhook_events_filter`; answers 201 with the prediction object; 422 for bad input; 404 for
  an unknown model or version; 429 `Request was throttled…` beyond `rate_limit` a minute;
- answers `GET /v1/models/{owner}/{name}` with the whole model object (`url`, `run_count`,
  `latest_version` with its `created_at`, `cog_version` and `openapi_schema`…), the version
  itself at `…/versions/{id}` and the list at `…/versions`; and `GET /v1/predictions`, newest
  first, a page at a time (`next` and `previous` are whole URLs with an opaque `cursor`,
  `results` the predictions), with `created_after` / `created_before`;
- runs each prediction `starting` (a cold start: `cold_start_seconds`; then it waits there for
  one of the model's `instances`, as Replicate queues predictions beyond the hardware it has
  up) → `processing` (it
  fetches the input URL, paints the mark out with `mark_painter` keeping the sound, prints a
  tqdm-like bar in `logs`) → `succeeded` with `output` a URL it serves itself, or `failed`
  with an `error`;
  `metrics.predict_time` is the time spent processing;
- `POST /v1/predictions/{id}/cancel` stops it (`canceled`, billed up to then);
- `GET /v1/webhooks/default/secret` → `{"key": "whsec_…"}`; webhooks (`start` when created,
  `completed` at the end, as filtered) carry the prediction and are signed the Standard Webhooks
  way with the `standardwebhooks` package.

Drills change its settings while it runs: `POST /__sim__/config` with a JSON object (cold
starts, failure rate, rate limit, the model gone, repeated webhooks). `GET /__sim__/predictions`
lists what it has seen. Production code never imports this package (a test checks).
"""

import base64
import binascii
import ctypes
import ctypes.util
import dataclasses
import hmac
import json
import logging
import random
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from apps.simulators.config import coerce_changes
from apps.simulators.http import Reply, file_reply, json_reply, read_body, serve
from apps.simulators.mark_painter import NotAVideo, paint_over_marks
from apps.simulators.replicate.config import COG_VERSION, VERSION_CREATED_AT, ReplicateSimConfig
from apps.simulators.webhooks import WebhookSender

__all__ = ["ReplicateSimConfig", "ReplicateSimulator"]

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 30.0
FETCH_CHUNK_BYTES = 256 * 1024
RATE_WINDOW_SECONDS = 60.0
TERMINAL = ("succeeded", "failed", "canceled")
EVENTS = ("start", "output", "logs", "completed")
# Without a filter Replicate sends webhooks for new output and the end (this simulator sends
# no `output` or `logs` webhooks: only `start` and `completed` matter to the app).
DEFAULT_EVENTS = ("output", "completed")


@dataclass
class SimPrediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    webhook: str
    events: list[str]
    created_at: str
    status: str = "starting"
    output: str | None = None
    error: str | None = None
    logs: str = ""
    started_at: str | None = None
    completed_at: str | None = None
    predict_time: float | None = None
    began: float | None = None  # simulator clock (monotonic) when processing began
    canceled: threading.Event = field(default_factory=threading.Event)
    webhooks: list[str] = field(default_factory=list)  # outcome of each webhook sent

    def record(self, base_url: str) -> dict[str, Any]:
        """The prediction object, as `GET /v1/predictions/{id}` and webhooks give it."""
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "logs": self.logs,
            "output": self.output,
            "data_removed": False,
            "error": self.error,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "source": "api",
            "webhook": self.webhook or None,
            "webhook_events_filter": self.events if self.webhook else None,
            "metrics": {} if self.predict_time is None else {"predict_time": self.predict_time},
            "urls": {
                "get": f"{base_url}/v1/predictions/{self.id}",
                "cancel": f"{base_url}/v1/predictions/{self.id}/cancel",
                "web": f"{base_url}/p/{self.id}",
            },
        }


class ReplicateSimulator:
    """The simulator's state and answers; `start()` serves it from a background thread."""

    def __init__(
        self, config: ReplicateSimConfig, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not config.webhook_secret:
            secret = base64.b64encode(secrets.token_bytes(24)).decode()
            config = dataclasses.replace(config, webhook_secret=f"whsec_{secret}")
        self._config = config
        self._lock = threading.Lock()
        self._predictions: dict[str, SimPrediction] = {}
        self._recent_creates: deque[float] = deque()
        self._requests: deque[dict[str, Any]] = deque(maxlen=1000)
        self._random = random.Random()  # noqa: S311 (failure draws, not secrets)
        self._dir = Path(tempfile.mkdtemp(prefix="replicate-sim-"))
        self._webhooks = WebhookSender(name="replicate-sim")
        self._runners: list[threading.Thread] = []
        self._busy_instances = 0
        self._instance_freed = threading.Condition()
        self._stopping = threading.Event()
        self._server = serve(self, host, port, name="Replicate simulator")
        self._serving: threading.Thread | None = None
        self.url = f"http://{host}:{self._server.server_address[1]}"

    # --- running ---------------------------------------------------------------------------
    def start(self) -> "ReplicateSimulator":
        """Serves from a background thread (tests); `stop()` ends it."""
        self._serving = threading.Thread(
            target=self.serve_forever, name="replicate-sim", daemon=True
        )
        self._serving.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for prediction in self._predictions.values():
                prediction.canceled.set()
            runners = list(self._runners)
        self._server.shutdown()
        self._server.server_close()
        for thread in [*runners, *([self._serving] if self._serving else [])]:
            thread.join(timeout=10)
        self._webhooks.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- control (tests, /__sim__/) --------------------------------------------------------
    def configure(self, **changes: Any) -> ReplicateSimConfig:
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)
            return self._config

    @property
    def config(self) -> ReplicateSimConfig:
        with self._lock:
            return self._config

    @property
    def webhook_secret(self) -> str:
        return self.config.webhook_secret

    def seen(self) -> dict[str, Any]:
        """What `/__sim__/predictions` shows: every prediction with its webhooks' outcomes, and
        the last requests."""
        with self._lock:
            return {
                "predictions": [
                    {**p.record(self.url), "sim_webhooks": list(p.webhooks)}
                    for p in self._predictions.values()
                ],
                "requests": list(self._requests),
            }

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        with self._lock:
            return self._predictions[prediction_id].record(self.url)

    # --- answers ---------------------------------------------------------------------------
    def answer(
        self, method: str, target: str, headers: dict[str, str], stream: BinaryIO, length: int
    ) -> Reply:
        body = read_body(stream, length)
        parts = urlsplit(target)
        path = parts.path
        if path.startswith("/v1/"):
            reply = self._api(method, path, headers, body, parse_qs(parts.query))
            with self._lock:
                self._requests.append({"method": method, "path": path, "status": reply.status})
            logger.info(
                "replicate-sim answer",
                extra={"method": method, "path": path, "http_status": reply.status},
            )
            return reply
        if method == "GET" and path.startswith("/delivery/") and path.endswith("/output.mp4"):
            return self._output(path.split("/")[2])
        if path == "/__sim__/predictions" and method == "GET":
            return json_reply(200, self.seen())
        if path == "/__sim__/config":
            return self._control(method, body)
        return _problem(404, "Not found", "The requested resource could not be found.")

    def _api(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        query: dict[str, list[str]],
    ) -> Reply:
        config = self.config
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), config.api_token.encode()
        ):
            return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        parts = path.strip("/").split("/")  # ["v1", ...]
        if method == "POST" and parts[1:] == ["predictions"]:
            return self._create(body, model_path=None)
        if (
            method == "POST"
            and len(parts) == 5
            and parts[1] == "models"
            and parts[4] == ("predictions")
        ):
            return self._create(body, model_path=f"{parts[2]}/{parts[3]}")
        if method == "GET" and parts[1:] == ["predictions"]:
            return self._list(query)
        if method == "GET" and len(parts) == 4 and parts[1] == "models":
            return self._model(f"{parts[2]}/{parts[3]}")
        if (
            method == "GET"
            and len(parts) in (5, 6)
            and parts[1] == "models"
            and (parts[4] == "versions")
        ):
            model = f"{parts[2]}/{parts[3]}"
            return self._version(model, parts[5]) if len(parts) == 6 else self._versions(model)
        if method == "GET" and len(parts) == 3 and parts[1] == "predictions":
            return self._get(parts[2])
        if (
            method == "POST"
            and len(parts) == 4
            and parts[1] == "predictions"
            and (parts[3] == "cancel")
        ):
            return self._cancel(parts[2])
        if method == "GET" and parts[1:] == ["webhooks", "default", "secret"]:
            return json_reply(200, {"key": config.webhook_secret})
        return _problem(404, "Not found", f"No such endpoint: {method} {path}")

    def _model(self, model: str) -> Reply:
        """The model object, as `models.get` answers it (the official client requires `url`,
        `owner`, `name`, `visibility`, `run_count`, and a `latest_version` it can read)."""
        config = self.config
        if config.model_gone or model != config.model:
            return _problem(404, "Not found", "The requested model could not be found.")
        owner, name = model.split("/")
        with self._lock:
            runs = len(self._predictions)
        return json_reply(
            200,
            {
                "url": f"https://replicate.com/{model}",
                "owner": owner,
                "name": name,
                "description": "Removes the Sora watermark from a video (SoraWatermarkCleaner).",
                "visibility": "public",
                "github_url": "https://github.com/linkedlist771/SoraWatermarkCleaner",
                "paper_url": None,
                "license_url": None,
                "run_count": runs,
                "cover_image_url": None,
                "default_example": None,
                "is_official": False,
                "latest_version": _version_object(config.version),
            },
        )

    def _version(self, model: str, version_id: str) -> Reply:
        config = self.config
        if config.model_gone or model != config.model or version_id != config.version:
            return _problem(404, "Not found", "The requested version could not be found.")
        return json_reply(200, _version_object(config.version))

    def _versions(self, model: str) -> Reply:
        config = self.config
        if config.model_gone or model != config.model:
            return _problem(404, "Not found", "The requested model could not be found.")
        page = {"next": None, "previous": None, "results": [_version_object(config.version)]}
        return json_reply(200, page)

    def _list(self, query: dict[str, list[str]]) -> Reply:
        """`GET /v1/predictions`: this account's predictions, newest first, a page at a time.
        `next` and `previous` are whole URLs to GET as they are (the client does)."""
        config = self.config
        try:
            after = _moment((query.get("created_after") or [""])[0])
            before = _moment((query.get("created_before") or [""])[0])
            direction, anchor = _read_cursor((query.get("cursor") or [""])[0])
        except ValueError as exc:
            return _problem(400, "Bad request", str(exc))

        def within(prediction: SimPrediction) -> bool:
            created = datetime.fromisoformat(prediction.created_at)
            return (after is None or created >= after) and (before is None or created < before)

        with self._lock:
            newest_first = [p for p in reversed(self._predictions.values()) if within(p)]
            ids = [p.id for p in newest_first]
            if anchor and anchor not in ids:
                return _problem(400, "Bad request", "The cursor is no longer valid.")
            if direction == "older":
                start = ids.index(anchor) + 1
            elif direction == "newer":
                start = max(0, ids.index(anchor) - config.page_size)
            else:
                start = 0
            page = newest_first[start : start + config.page_size]
            records = [p.record(self.url) for p in page]
        filters: dict[str, str] = {
            name: query[name][0] for name in ("created_after", "created_before") if name in query
        }
        more = start + config.page_size < len(newest_first)
        return json_reply(
            200,
            {
                "next": self._page_url(filters, "older", page[-1].id) if page and more else None,
                "previous": self._page_url(filters, "newer", page[0].id) if start > 0 else None,
                "results": records,
            },
        )

    def _page_url(self, filters: dict[str, str], direction: str, anchor: str) -> str:
        cursor = base64.urlsafe_b64encode(f"{direction}={anchor}".encode()).decode()
        return f"{self.url}/v1/predictions?{urlencode({**filters, 'cursor': cursor})}"

    def _create(self, body: bytes, *, model_path: str | None) -> Reply:
        config = self.config
        if not self._admit_create(config.rate_limit):
            wait = self._seconds_until_admitted()
            return json_reply(
                429, {"detail": f"Request was throttled. Your rate limit resets in ~{wait}s."}
            )
        try:
            request = json.loads(body)
        except (ValueError, RecursionError):
            return _problem(400, "Bad request", "The request body is not JSON")
        if not isinstance(request, dict):
            return _problem(400, "Bad request", "The request body must be a JSON object")
        if model_path is None:
            if config.model_gone or not _names_version(request.get("version"), config):
                return _problem(404, "Not found", "The requested version could not be found.")
        elif config.model_gone or model_path != config.model:
            return _problem(404, "Not found", "The requested model could not be found.")
        problem = _input_problem(request)
        if problem:
            return _problem(422, "Input validation failed", problem)
        prediction = SimPrediction(
            id=secrets.token_hex(13),
            model=config.model,
            version=config.version,
            input=request["input"],
            webhook=str(request.get("webhook") or ""),
            events=list(request.get("webhook_events_filter") or DEFAULT_EVENTS),
            created_at=_now(),
        )
        with self._lock:
            self._predictions[prediction.id] = prediction
            runner = threading.Thread(
                target=self._run, args=(prediction,), name="replicate-sim-run", daemon=True
            )
            self._runners.append(runner)
            record = prediction.record(self.url)
        self._notify(prediction, "start")
        runner.start()
        logger.info("replicate-sim prediction created", extra={"task_id": prediction.id})
        return json_reply(201, record)

    def _admit_create(self, limit: int) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._recent_creates and now - self._recent_creates[0] >= RATE_WINDOW_SECONDS:
                self._recent_creates.popleft()
            if len(self._recent_creates) >= limit:
                return False
            self._recent_creates.append(now)
            return True

    def _seconds_until_admitted(self) -> int:
        with self._lock:
            oldest = self._recent_creates[0] if self._recent_creates else time.monotonic()
        return max(1, round(RATE_WINDOW_SECONDS - (time.monotonic() - oldest)))

    def _get(self, prediction_id: str) -> Reply:
        with self._lock:
            prediction = self._predictions.get(prediction_id)
            if prediction is None:
                return _problem(404, "Not found", "The requested prediction could not be found.")
            return json_reply(200, prediction.record(self.url))

    def _cancel(self, prediction_id: str) -> Reply:
        with self._lock:
            prediction = self._predictions.get(prediction_id)
            if prediction is None:
                return _problem(404, "Not found", "The requested prediction could not be found.")
            ended_now = prediction.status not in TERMINAL
            if ended_now:
                # The runner sees the flag and stops; what ran so far is billed.
                prediction.canceled.set()
                prediction.status = "canceled"
                prediction.completed_at = _now()
                if prediction.began is not None:
                    prediction.predict_time = round(time.monotonic() - prediction.began, 6)
            record = prediction.record(self.url)
        if ended_now:
            self._notify(prediction, "completed")
        return json_reply(200, record)

    def _output(self, prediction_id: str) -> Reply:
        with self._lock:
            prediction = self._predictions.get(prediction_id)
            done = prediction is not None and prediction.status == "succeeded"
        output = self._dir / f"{prediction_id}.mp4"
        if not done or not output.exists():
            return Reply(404, b"Not found", "text/plain")
        return file_reply(output, "video/mp4")

    def _control(self, method: str, body: bytes) -> Reply:
        if method == "POST":
            try:
                changes = json.loads(body)
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of settings to change")
                fixed = frozenset({"api_token", "webhook_secret"})
                self.configure(**coerce_changes(ReplicateSimConfig, changes, fixed=fixed))
            except (ValueError, TypeError, RecursionError) as exc:
                return json_reply(400, {"error": str(exc)})
        return json_reply(200, self.config.public())

    # --- a prediction's run ----------------------------------------------------------------
    def _run(self, prediction: SimPrediction) -> None:
        if prediction.canceled.wait(self.config.cold_start_seconds):
            return
        if not self._take_instance(prediction):
            return
        try:
            self._process(prediction)
        finally:
            with self._instance_freed:
                self._busy_instances -= 1
                self._instance_freed.notify()
            _give_memory_back()

    def _take_instance(self, prediction: SimPrediction) -> bool:
        """Waits in `starting` for a free instance of the model; False if canceled meanwhile.
        (Each instance holds a decoder and an encoder: a thousand predictions at once would
        otherwise take gigabytes of memory.)"""
        with self._instance_freed:
            while self._busy_instances >= self.config.instances:
                if prediction.canceled.is_set() or self._stopping.is_set():
                    return False
                self._instance_freed.wait(timeout=0.1)
            self._busy_instances += 1
        return True

    def _process(self, prediction: SimPrediction) -> None:
        config = self.config
        began = time.monotonic()
        with self._lock:
            if prediction.status != "starting":
                return
            prediction.status, prediction.started_at = "processing", _now()
            prediction.began = began
        source, output = self._dir / f"{prediction.id}.in", self._dir / f"{prediction.id}.mp4"
        error = ""
        try:
            _fetch(str(prediction.input["video"]), source)
            self._log(prediction, "Downloaded the input video\n")
            paint_over_marks(
                source,
                output,
                on_progress=lambda share: self._bar(prediction, share),
                keep_sound=not config.drops_sound,
            )
        except (httpx.HTTPError, OSError) as exc:
            error = f"Could not download the input video: {type(exc).__name__}"
        except NotAVideo as exc:
            error = f"The input is not a video: {exc}"
        finally:
            source.unlink(missing_ok=True)
        remaining = config.processing_seconds - (time.monotonic() - began)
        if remaining > 0:
            prediction.canceled.wait(remaining)
        fails = bool(error) or self._random.random() < config.failure_rate
        with self._lock:
            if prediction.canceled.is_set():
                output.unlink(missing_ok=True)
                return
            prediction.predict_time = round(time.monotonic() - began, 6)
            prediction.completed_at = _now()
            if fails:
                prediction.status = "failed"
                prediction.error = error or "CUDA out of memory. Tried to allocate 2.00 GiB"
                output.unlink(missing_ok=True)
            else:
                prediction.status = "succeeded"
                prediction.output = f"{self.url}/delivery/{prediction.id}/output.mp4"
        self._notify(prediction, "completed")

    def _bar(self, prediction: SimPrediction, share: float) -> None:
        percent = round(share * 100)
        bar = "█" * (percent // 10)
        self._log(prediction, f"Removing watermark: {percent:3d}%|{bar:<10}|\n")

    def _log(self, prediction: SimPrediction, line: str) -> None:
        with self._lock:
            prediction.logs += line

    def _notify(self, prediction: SimPrediction, event: str) -> None:
        """Sends a webhook for `event` if the prediction asked for it, signed as Replicate
        signs them: Standard Webhooks, with the account's secret."""
        with self._lock:
            if not prediction.webhook or event not in prediction.events:
                return
            body = json.dumps(prediction.record(self.url)).encode()
            secret, repeats = self._config.webhook_secret, self._config.webhook_repeats
        message_id = f"msg_{secrets.token_hex(12)}"

        def headers() -> dict[str, str]:
            now = datetime.now(UTC)
            signature = Webhook(secret).sign(message_id, now, body.decode())
            return {
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature,
            }

        def record(outcome: str) -> None:
            with self._lock:
                prediction.webhooks.append(f"{event} {outcome}")

        self._webhooks.send(
            prediction.webhook, body, headers=headers, outcome=record, times=repeats
        )


def _names_version(reference: object, config: ReplicateSimConfig) -> bool:
    """Whether a prediction's `version` names this model's version: its id alone, or
    `owner/name:id` (what the official client sends for `version="owner/name:id"`). A bare
    `owner/name` runs only Replicate's official models, which this one is not."""
    if not isinstance(reference, str):
        return False
    model, colon, version = reference.rpartition(":")
    if not colon:
        return reference == config.version
    return model == config.model and version == config.version


def _version_object(version: str) -> dict[str, Any]:
    """A model version as Replicate describes it: its inputs and outputs as OpenAPI."""
    return {
        "id": version,
        "created_at": VERSION_CREATED_AT,
        "cog_version": COG_VERSION,
        "openapi_schema": {
            "openapi": "3.0.2",
            "info": {"title": "Cog", "version": "0.1.0"},
            "paths": {},
            "components": {
                "schemas": {
                    "Input": {
                        "type": "object",
                        "title": "Input",
                        "required": ["video"],
                        "properties": {
                            "video": {
                                "type": "string",
                                "title": "Video",
                                "format": "uri",
                                "x-order": 0,
                                "description": "The Sora video to remove the watermark from",
                            }
                        },
                    },
                    "Output": {"type": "string", "title": "Output", "format": "uri"},
                }
            },
        },
    }


def _moment(value: str) -> datetime | None:
    """An ISO 8601 date-time given as a filter; None when empty."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read_cursor(cursor: str) -> tuple[str, str]:
    """A page cursor's direction ("older" or "newer") and the prediction it starts from."""
    if not cursor:
        return "", ""
    try:
        direction, _, anchor = base64.urlsafe_b64decode(cursor).decode().partition("=")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("The cursor is not valid.") from None
    if direction not in ("older", "newer") or not anchor:
        raise ValueError("The cursor is not valid.")
    return direction, anchor


def _input_problem(request: dict[str, Any]) -> str:
    task_input = request.get("input")
    if not isinstance(task_input, dict):
        return "- input: Invalid type. Expected: object"
    video = task_input.get("video")
    if not video:
        return "- input: video is required"
    if not isinstance(video, str) or not video.startswith(("http://", "https://")):
        return "- input.video: Does not match format 'uri'"
    webhook = request.get("webhook")
    if webhook is not None and (
        not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))
    ):
        return "- webhook: Does not match format 'uri'"
    events = request.get("webhook_events_filter")
    if events is not None and (
        not isinstance(events, list) or any(event not in EVENTS for event in events)
    ):
        return f"- webhook_events_filter: each item must be one of {', '.join(EVENTS)}"
    return ""


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`; None with another C library (musl, macOS)."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


_MALLOC_TRIM = _malloc_trim()


def _give_memory_back() -> None:
    """Returns the memory of a finished prediction's frames to the system. glibc keeps freed
    heap for reuse, and with predictions painted on many threads at once it kept nearly all of
    it: 1 GB after 160 predictions of a 1 s clip, 280 MB with this."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _fetch(url: str, target: Path) -> None:
    """Streams the input to disk, as Replicate fetches a file URL input."""
    with (
        httpx.stream("GET", url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=True) as response,
        target.open("wb") as out,
    ):
        response.raise_for_status()
        for chunk in response.iter_bytes(FETCH_CHUNK_BYTES):
            out.write(chunk)


def _problem(status: int, title: str, detail: str) -> Reply:
    # Replicate's errors are RFC 7807 problems.
    return Reply(
        status,
        json.dumps({"title": title, "detail": detail, "status": status}).encode(),
        "application/problem+json",
    )


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
