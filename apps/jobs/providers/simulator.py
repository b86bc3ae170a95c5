"""The Kie simulator: Kie's Market API contract (shared/kie-api.md), served on loopback.

`make run` starts it (`manage.py kie_simulator`) so the whole app works without a Kie account,
and tests start it in-process on an ephemeral port to run the real client over real sockets.
It answers like Kie: envelopes with HTTP 200, validation messages, tasks that go
`waiting → queuing → generating → success|fail` over a random latency, a 10-second create
window, a paused mode, a credit balance, callbacks (signed when it has an HMAC key), and result
links it serves itself. Everything lives in memory; nothing is written to disk.

Fault drills (slow or broken answers, results that 404 or are HTML) are flags of the command and
can be changed while it runs: `POST /__sim__/config` with a JSON object of new values.
`GET /__sim__/tasks` lists the tasks and requests it has seen (`?callback=<token>`: only the
tasks whose callback URL carries that job's token).
"""

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

logger = logging.getLogger(__name__)

SAMPLE_MP4 = Path(__file__).resolve().parent / "assets" / "sample.mp4"
MODEL = "sora-watermark-remover"
CREDITS_PER_TASK = 10
RATE_WINDOW_SECONDS = 10.0
MAX_VIDEO_URL_LENGTH = 500
PAUSED_MESSAGE = "This interface is temporarily paused"
CALLBACK_TIMEOUT_SECONDS = 15.0
TICK_SECONDS = 0.02
CHUNK_BYTES = 64 * 1024
API_FAULTS = ("", "malformed", "html")
RESULT_FAULTS = ("", "missing", "html")

# The meaning of each envelope code in the contract table, as the message of a drill that
# forces a code (`forced_code`) without giving one.
CODE_MESSAGES = {
    400: "Bad request",
    401: "You do not have access permissions: the API key is missing or invalid",
    402: "Credits insufficient: top up your Kie account",
    404: "Not found",
    408: "Upstream gave no result for more than 10 minutes",
    422: "Validation error",
    429: "Rate limited: too many requests",
    433: "Sub-key usage limit exceeded",
    455: "Service under maintenance",
    500: "Internal server error",
    501: "Generation failed",
    505: "Feature disabled",
}

# Generated "video" data for --result-bytes: one block, repeated, so N bytes cost 64 KiB.
# It opens with an MP4 `ftyp` box, as a real video does, so it passes the app's format check.
_FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
_FILLER = _FTYP + random.Random(20260324).randbytes(CHUNK_BYTES - len(_FTYP))  # noqa: S311


@dataclass
class SimulatorConfig:
    """How the simulator behaves. `credits` is its live balance: each success costs 10."""

    api_key: str
    latency: tuple[float, float] = (1.0, 3.0)
    failure_rate: float = 0.0
    null_record_seconds: float = 0.0
    rate_limit: int = 20
    paused: bool = False
    credits: int = 10_000_000
    hmac_key: str = ""
    result_bytes: int = 0  # 0 serves the sample MP4 that ships with the project
    # Streams generated results at most this fast (0: as fast as possible): a slow download
    # gives a fault drill time to kill the worker in the middle of it.
    result_bytes_per_second: int = 0
    api_delay_seconds: float = 0.0  # wait before every API answer
    # Make the task, then wait this long before answering createTask: a client that gives up
    # (or dies) meanwhile leaves a task it never heard of, as with a lost answer from Kie.
    create_answer_delay_seconds: float = 0.0
    callback_repeats: int = 1  # send each callback this many times at once (Kie may repeat)
    api_fault: str = ""  # "malformed": broken JSON with HTTP 200; "html": a proxy's 502 page
    forced_code: int = 0  # answer every authorised API call with this envelope code
    forced_msg: str = ""
    result_fault: str = ""  # "missing": result links 404; "html": they serve a web page

    def __post_init__(self) -> None:
        low, high = self.latency
        problems = [
            (not self.api_key, "api_key must not be empty"),
            (not 0 <= low <= high, "latency must be MIN MAX with 0 <= MIN <= MAX"),
            (not 0 <= self.failure_rate <= 1, "failure_rate must be between 0 and 1"),
            (self.null_record_seconds < 0, "null_record_seconds must not be negative"),
            (self.rate_limit < 1, "rate_limit must be at least 1"),
            (self.callback_repeats < 1, "callback_repeats must be at least 1"),
            (self.credits < 0, "credits must not be negative"),
            (self.result_bytes < 0, "result_bytes must not be negative"),
            (self.result_bytes_per_second < 0, "result_bytes_per_second must not be negative"),
            (self.api_delay_seconds < 0, "api_delay_seconds must not be negative"),
            (
                self.create_answer_delay_seconds < 0,
                "create_answer_delay_seconds must not be negative",
            ),
            (self.api_fault not in API_FAULTS, f"api_fault must be one of {API_FAULTS}"),
            (
                self.result_fault not in RESULT_FAULTS,
                f"result_fault must be one of {RESULT_FAULTS}",
            ),
            (self.forced_code not in (0, *CODE_MESSAGES), "forced_code must be 0 or a Kie code"),
        ]
        errors = [message for failed, message in problems if failed]
        if errors:
            raise ValueError("; ".join(errors))

    def public(self) -> dict[str, Any]:
        """The settings a test or an operator may read back; secrets left out."""
        values = dataclasses.asdict(self)
        del values["api_key"], values["hmac_key"]
        return values


@dataclass
class SimTask:
    task_id: str
    request: dict[str, Any]
    created_at: float  # simulator clock (monotonic)
    created_ms: int  # wall clock, Unix milliseconds, as Kie reports times
    latency: float
    fails: bool
    finished_ms: int | None = None
    callback: str = ""  # what happened to the callback: "", "sent: HTTP 200", "failed: …"
    result_fetches: int = 0

    @property
    def callback_url(self) -> str:
        return str(self.request.get("callBackUrl") or "")

    def state(self, now: float) -> str:
        if self.finished_ms is not None:
            return "fail" if self.fails else "success"
        elapsed = now - self.created_at
        if elapsed < self.latency * 0.2:
            return "waiting"
        if elapsed < self.latency * 0.4:
            return "queuing"
        return "generating"


@dataclass
class Reply:
    status: int
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    length: int | None = None  # required when `body` is streamed in chunks


def envelope(code: int, msg: str, data: object = None) -> Reply:
    # Kie answers most failures with HTTP 200: the envelope code is what counts.
    return Reply(200, json.dumps({"code": code, "msg": msg, "data": data}).encode())


class KieSimulator:
    """The simulator's state and answers; `start()` serves it from a background thread."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _require_loopback(host)
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, SimTask] = {}
        self._recent_creates: deque[float] = deque()
        self._requests: deque[dict[str, Any]] = deque(maxlen=1000)
        self._random = random.Random()  # noqa: S311 (latency and failure draws, not secrets)
        self._stopping = threading.Event()
        self._callbacks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kie-sim-callback")
        self._callback_http: httpx.Client | None = None  # built on the first callback
        self._server = _Server((host, port), _Handler)
        self._server.simulator = self
        self._threads: list[threading.Thread] = []
        self.url = f"http://{host}:{self._server.server_address[1]}"

    # --- running ---------------------------------------------------------------------------
    def start(self) -> "KieSimulator":
        """Serves from a background thread (tests); `stop()` ends it."""
        serving = threading.Thread(target=self.serve_forever, name="kie-sim", daemon=True)
        serving.start()
        self._threads.append(serving)
        return self

    def serve_forever(self) -> None:
        ticker = threading.Thread(target=self._tick, name="kie-sim-ticker", daemon=True)
        ticker.start()
        self._threads.append(ticker)
        try:
            self._server.serve_forever(poll_interval=0.05)
        finally:
            self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._callbacks.shutdown(wait=True, cancel_futures=True)
        if self._callback_http is not None:
            self._callback_http.close()

    def _tick(self) -> None:
        # Tasks finish on time even when nobody polls, so callbacks go out on time.
        while not self._stopping.wait(TICK_SECONDS):
            self.finish_due_tasks()

    # --- control (tests, /__sim__/) --------------------------------------------------------
    def configure(self, **changes: Any) -> SimulatorConfig:
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)
            return self._config

    @property
    def config(self) -> SimulatorConfig:
        with self._lock:
            return self._config

    def seen(self, *, callback: str = "") -> dict[str, Any]:
        """What `/__sim__/tasks` shows: every task (only those whose callback URL contains
        `callback`, when given: a job's tasks, by its callback token), the last requests, the
        balance."""
        self.finish_due_tasks()
        now = self._clock()
        with self._lock:
            tasks = [
                {
                    "taskId": task.task_id,
                    "state": task.state(now),
                    "request": task.request,
                    "callBackUrl": task.callback_url,
                    "callback": task.callback,
                    "resultFetches": task.result_fetches,
                }
                for task in self._tasks.values()
                if callback in task.callback_url
            ]
            return {
                "tasks": tasks,
                "requests": list(self._requests),
                "credits": self._config.credits,
            }

    def finish_due_tasks(self) -> None:
        now = self._clock()
        finished = []
        with self._lock:
            for task in self._tasks.values():
                if task.finished_ms is None and now - task.created_at >= task.latency:
                    task.finished_ms = _now_ms()
                    if not task.fails:
                        self._config.credits = max(0, self._config.credits - CREDITS_PER_TASK)
                    if task.callback_url:
                        finished.append((task, self._callback_body(task, now)))
            hmac_key, repeats = self._config.hmac_key, self._config.callback_repeats
        for task, body in finished:
            try:
                for _ in range(repeats):
                    self._callbacks.submit(self._send_callback, task, body, hmac_key)
            except RuntimeError:  # stopping: the callback senders are gone
                logger.info("kie-sim callback dropped at stop", extra={"task_id": task.task_id})

    # --- answers ---------------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        self.finish_due_tasks()
        if path.startswith("/api/"):
            reply, code = self._api(method, path, query, headers, body)
            with self._lock:
                self._requests.append({"method": method, "path": path, "code": code})
            logger.info("kie-sim answer", extra={"method": method, "path": path, "code": code})
            return reply
        if method == "GET" and path.startswith("/results/") and path.endswith(".mp4"):
            return self._result(path.removeprefix("/results/").removesuffix(".mp4"))
        if path == "/__sim__/tasks" and method == "GET":
            return _json_reply(200, self.seen(callback=(query.get("callback") or [""])[0]))
        if path == "/__sim__/config":
            return self._control(method, body)
        return Reply(404, b"Not found", "text/plain")

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[Reply, int | str]:
        config = self.config
        if config.api_delay_seconds:
            time.sleep(config.api_delay_seconds)
        if config.api_fault == "malformed":
            return Reply(200, b'{"code": 200, "msg": "success", "data": {"taskId": '), "malformed"
        if config.api_fault == "html":
            return Reply(502, _BAD_GATEWAY_PAGE, "text/html; charset=utf-8"), "html"
        scheme, _, sent_key = headers.get("authorization", "").partition(" ")
        key_matches = hmac.compare_digest(sent_key.strip().encode(), config.api_key.encode())
        if scheme.lower() != "bearer" or not key_matches:
            return envelope(401, CODE_MESSAGES[401]), 401
        if config.forced_code:
            code = config.forced_code
            return envelope(code, config.forced_msg or CODE_MESSAGES[code]), code

        routes: dict[tuple[str, str], Callable[[], tuple[int, str, object]]] = {
            ("POST", "/api/v1/jobs/createTask"): lambda: self._create(body),
            ("GET", "/api/v1/jobs/recordInfo"): lambda: self._record(query),
            ("GET", "/api/v1/chat/credit"): lambda: (200, "success", self.config.credits),
            ("POST", "/api/v1/common/download-url"): lambda: self._download_url(body),
        }
        route = routes.get((method, path))
        if route is None:
            return envelope(404, f"No such endpoint: {method} {path}"), 404
        code, msg, data = route()
        return envelope(code, msg, data), code

    def _create(self, body: bytes) -> tuple[int, str, object]:
        config = self.config
        if config.paused:
            return 500, PAUSED_MESSAGE, None
        if not self._admit_create(config.rate_limit):
            limit = f"at most {config.rate_limit} new tasks per {RATE_WINDOW_SECONDS:.0f} seconds"
            return 429, f"Rate limited: {limit}", None
        try:
            request = json.loads(body)
        except (ValueError, RecursionError):
            return 400, "The request body is not JSON", None
        problem = _validation_problem(request)
        if problem:
            return 422, problem, None
        if config.credits < CREDITS_PER_TASK:
            return 402, CODE_MESSAGES[402], None

        task = SimTask(
            task_id=uuid.uuid4().hex,
            request=request,
            created_at=self._clock(),
            created_ms=_now_ms(),
            latency=self._random.uniform(*config.latency),
            fails=self._random.random() < config.failure_rate,
        )
        with self._lock:
            self._tasks[task.task_id] = task
        logger.info("kie-sim task created", extra={"task_id": task.task_id})
        if config.create_answer_delay_seconds:
            time.sleep(config.create_answer_delay_seconds)
        return 200, "success", {"taskId": task.task_id}

    def _admit_create(self, limit: int) -> bool:
        now = self._clock()
        with self._lock:
            while self._recent_creates and now - self._recent_creates[0] >= RATE_WINDOW_SECONDS:
                self._recent_creates.popleft()
            if len(self._recent_creates) >= limit:
                return False
            self._recent_creates.append(now)
            return True

    def _record(self, query: dict[str, list[str]]) -> tuple[int, str, object]:
        task_id = (query.get("taskId") or [""])[0].strip()
        if not task_id:
            return 400, "taskId parameter is required", None
        now = self._clock()
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return 404, "Task not found", None
            if now - task.created_at < self._config.null_record_seconds:
                return 422, "recordInfo is null", None
            return 200, "success", self._record_data(task, now)

    def _download_url(self, body: bytes) -> tuple[int, str, object]:
        try:
            url = json.loads(body).get("url")
        except (ValueError, RecursionError, AttributeError):
            return 400, "The request body is not JSON", None
        if not isinstance(url, str) or not url.startswith(f"{self.url}/results/"):
            return 422, "Only Kie result URLs can be refreshed", None
        return 200, "success", url

    def _result(self, task_id: str) -> Reply:
        now = self._clock()
        with self._lock:
            task = self._tasks.get(task_id)
            if (
                task is None
                or task.state(now) != "success"
                or self._config.result_fault == "missing"
            ):
                return Reply(404, b"Not found", "text/plain")
            task.result_fetches += 1
            config = self._config
        if config.result_fault == "html":
            return Reply(200, _RESULT_PAGE, "text/html; charset=utf-8")
        if config.result_bytes:
            body = _filler(config.result_bytes, config.result_bytes_per_second)
            return Reply(200, body, "video/mp4", length=config.result_bytes)
        return Reply(200, SAMPLE_MP4.read_bytes(), "video/mp4")

    def _control(self, method: str, body: bytes) -> Reply:
        if method == "POST":
            try:
                changes = json.loads(body)
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of settings to change")
                self.configure(**_coerce_changes(changes))
            except (ValueError, TypeError, RecursionError) as exc:
                return _json_reply(400, {"error": str(exc)})
        return _json_reply(200, self.config.public())

    # --- task records and callbacks (call with the lock held) -----------------------------
    def _record_data(self, task: SimTask, now: float) -> dict[str, Any]:
        state = task.state(now)
        data: dict[str, Any] = {
            "taskId": task.task_id,
            "model": MODEL,
            "state": state,
            "param": json.dumps(task.request),
            "failCode": "500" if state == "fail" else "",
            "failMsg": "Internal server error" if state == "fail" else "",
            "costTime": round(task.latency * 1000) if task.finished_ms else 0,
            "completeTime": task.finished_ms,
            "createTime": task.created_ms,
            "updateTime": task.finished_ms or task.created_ms,
        }
        if state == "success":
            data["resultJson"] = json.dumps({"resultUrls": [self._result_url(task)]})
        return data

    def _result_url(self, task: SimTask) -> str:
        return f"{self.url}/results/{task.task_id}.mp4"

    def _callback_body(self, task: SimTask, now: float) -> dict[str, Any]:
        data = self._record_data(task, now)
        # Callbacks report costTime in seconds (recordInfo in milliseconds), as Kie's do.
        data["costTime"] = max(1, round(task.latency))
        data["consumeCredits"] = 0 if task.fails else CREDITS_PER_TASK
        data["remainedCredits"] = self._config.credits
        if task.fails:
            data["resultJson"] = None
            return {"code": 501, "msg": "Playground task failed.", "data": data}
        return {"code": 200, "msg": "Playground task completed successfully.", "data": data}

    def _send_callback(self, task: SimTask, body: dict[str, Any], hmac_key: str) -> None:
        headers = {"Content-Type": "application/json"}
        if hmac_key:
            timestamp = str(int(time.time()))
            message = f"{task.task_id}.{timestamp}".encode()
            digest = hmac.new(hmac_key.encode(), message, hashlib.sha256).digest()
            headers["X-Webhook-Timestamp"] = timestamp
            headers["X-Webhook-Signature"] = base64.b64encode(digest).decode()
        with self._lock:
            if self._callback_http is None:
                self._callback_http = httpx.Client(timeout=CALLBACK_TIMEOUT_SECONDS)
            http = self._callback_http
        try:
            response = http.post(
                task.callback_url, content=json.dumps(body).encode(), headers=headers
            )
            outcome = f"sent: HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            outcome = f"failed: {type(exc).__name__}: {exc}"
            logger.warning(
                "kie-sim callback failed",
                extra={"task_id": task.task_id, "url": task.callback_url, "error": outcome},
            )
        with self._lock:
            task.callback = outcome


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow drill answer must not hold up stop()
    simulator: KieSimulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm, every answer on a
    # kept-alive connection would wait for a delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(Reply(400, b"Bad Content-Length", "text/plain"))
            return
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.simulator.answer(method, self.path, headers, body)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout drill, an aborted download): nothing to answer.
            self.close_connection = True

    def _send(self, reply: Reply) -> None:
        chunks = [reply.body] if isinstance(reply.body, bytes) else reply.body
        length = len(reply.body) if isinstance(reply.body, bytes) else reply.length
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("kie-sim http " + format, *args)


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"The Kie simulator listens on loopback only (127.0.0.1 or localhost), not {host!r}"
        )


def _validation_problem(request: object) -> str:
    """Kie's checks of a createTask body, in its order; "" when the request is valid."""
    if not isinstance(request, dict):
        return "The request body must be a JSON object"
    model = request.get("model")
    if not model:
        return "model is required"
    if model != MODEL:
        return f"model {model!r} is not supported: use {MODEL!r}"
    task_input = request.get("input")
    if not isinstance(task_input, dict) or not task_input.get("video_url"):
        return "input.video_url is required"
    video_url = task_input["video_url"]
    if not isinstance(video_url, str) or not video_url.startswith(
        ("https://sora.chatgpt.com", "sora.chatgpt.com")
    ):
        return "input.video_url must be a link that starts with sora.chatgpt.com"
    if len(video_url) > MAX_VIDEO_URL_LENGTH:
        return f"input.video_url must be at most {MAX_VIDEO_URL_LENGTH} characters"
    if task_input.get("upload_method", "s3") not in ("s3", "oss"):
        return "input.upload_method must be s3 or oss"
    callback_url = request.get("callBackUrl")
    if callback_url is not None and (
        not isinstance(callback_url, str) or not callback_url.startswith(("http://", "https://"))
    ):
        return "callBackUrl must be an http(s) URL"
    return ""


def _coerce_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Checks a `/__sim__/config` change: known settings, JSON types that fit them."""
    fields = {f.name: f for f in dataclasses.fields(SimulatorConfig)}
    coerced: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in fields or name == "api_key":
            raise ValueError(f"{name!r} is not a setting that can be changed")
        default = fields[name].default
        if isinstance(default, tuple):
            if not (isinstance(value, list) and len(value) == 2):
                raise ValueError(f"{name} must be a list of two numbers")
            coerced[name] = (float(value[0]), float(value[1]))
        elif isinstance(default, bool) or isinstance(value, bool):
            if type(value) is not type(default):
                raise ValueError(f"{name} must be {type(default).__name__}")
            coerced[name] = value
        elif isinstance(default, float) and isinstance(value, int | float):
            coerced[name] = float(value)
        elif type(value) is type(default):
            coerced[name] = value
        else:
            raise ValueError(f"{name} must be {type(default).__name__}")
    return coerced


def _filler(total: int, bytes_per_second: int = 0) -> Iterator[bytes]:
    pause = CHUNK_BYTES / bytes_per_second if bytes_per_second else 0.0
    for offset in range(0, total, CHUNK_BYTES):
        yield _FILLER[: min(CHUNK_BYTES, total - offset)]
        if pause:
            time.sleep(pause)


def _json_reply(status: int, payload: object) -> Reply:
    return Reply(status, json.dumps(payload, indent=1).encode())


def _now_ms() -> int:
    return int(time.time() * 1000)


_BAD_GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_RESULT_PAGE = b"<!doctype html><html><body><h1>This file has expired</h1></body></html>"
