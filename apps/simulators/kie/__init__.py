"""The Kie simulator: Kie's Market API contract (shared/kie-api.md), served on loopback.

`make run` starts it (`manage.py kie_simulator`) so the whole app works without a Kie account,
and tests and benchmarks start it on an ephemeral port to run the real client over real
sockets. It answers like Kie: envelopes with HTTP 200, validation messages, tasks that go
`waiting → queuing → generating → success|fail` over a random latency, a 10-second create
window, a paused mode, a credit balance, callbacks (signed when it has an HMAC key), and result
links it serves itself. Everything lives in memory; nothing is written to disk.

Split by concern: `contract` (Kie's codes, checks and envelope), `config` (settings), `tasks` (a
task's states and record), `callbacks` and `assets` (what results serve); the server, live
setting changes and webhook posting are shared with the other simulators (`simulators.http`,
`.config`, `.webhooks`). This module holds the state and answers each request.

Fault drills (slow or broken answers, results that 404 or are HTML, lost createTask answers,
repeated callbacks) are flags of the command and can be changed while it runs:
`POST /__sim__/config` with a JSON object of new values. `GET /__sim__/tasks` lists the tasks
and requests it has seen (`?callback=<token>`: only the tasks whose callback URL carries that
job's token).

Production code never imports this package (a test checks): it serves local runs and tests.
"""

import dataclasses
import hmac
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from apps.simulators.config import coerce_changes
from apps.simulators.http import Reply, json_reply, read_body, serve
from apps.simulators.kie.assets import (
    BAD_GATEWAY_PAGE,
    CHUNK_BYTES,
    RESULT_PAGE,
    SAMPLE_MP4,
    filler,
)
from apps.simulators.kie.callbacks import CallbackSender, callback_body
from apps.simulators.kie.config import SimulatorConfig
from apps.simulators.kie.contract import (
    CODE_MESSAGES,
    CREDITS_PER_TASK,
    PAUSED_MESSAGE,
    RATE_WINDOW_SECONDS,
    envelope,
    validation_problem,
)
from apps.simulators.kie.tasks import SimTask, now_ms, record_data

__all__ = ["CHUNK_BYTES", "SAMPLE_MP4", "KieSimulator", "SimulatorConfig"]

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.02


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
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, SimTask] = {}
        self._recent_creates: deque[float] = deque()
        self._requests: deque[dict[str, Any]] = deque(maxlen=1000)
        self._random = random.Random()  # noqa: S311 (latency and failure draws, not secrets)
        self._stopping = threading.Event()
        self._callbacks = CallbackSender(self._lock)
        self._server = serve(self, host, port, name="Kie simulator")
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
        self._callbacks.close()

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
                    task.finished_ms = now_ms()
                    if not task.fails:
                        self._config.credits = max(0, self._config.credits - CREDITS_PER_TASK)
                    if task.callback_url:
                        record = record_data(task, now, self._result_url(task))
                        finished.append((task, callback_body(task, record, self._config.credits)))
            hmac_key, repeats = self._config.hmac_key, self._config.callback_repeats
        for task, body in finished:
            self._callbacks.send(task, body, hmac_key=hmac_key, times=repeats)

    # --- answers ---------------------------------------------------------------------------
    def answer(
        self, method: str, target: str, headers: dict[str, str], stream: BinaryIO, length: int
    ) -> Reply:
        body = read_body(stream, length)
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
            return json_reply(200, self.seen(callback=(query.get("callback") or [""])[0]))
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
            return Reply(502, BAD_GATEWAY_PAGE, "text/html; charset=utf-8"), "html"
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
        problem = validation_problem(request)
        if problem:
            return 422, problem, None
        if config.credits < CREDITS_PER_TASK:
            return 402, CODE_MESSAGES[402], None

        task = SimTask(
            task_id=uuid.uuid4().hex,
            request=request,
            created_at=self._clock(),
            created_ms=now_ms(),
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
            return 200, "success", record_data(task, now, self._result_url(task))

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
            return Reply(200, RESULT_PAGE, "text/html; charset=utf-8")
        if config.result_bytes:
            body = filler(config.result_bytes, config.result_bytes_per_second)
            return Reply(200, body, "video/mp4", length=config.result_bytes)
        return Reply(200, SAMPLE_MP4.read_bytes(), "video/mp4")

    def _control(self, method: str, body: bytes) -> Reply:
        if method == "POST":
            try:
                changes = json.loads(body)
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of settings to change")
                self.configure(
                    **coerce_changes(SimulatorConfig, changes, fixed=frozenset({"api_key"}))
                )
            except (ValueError, TypeError, RecursionError) as exc:
                return json_reply(400, {"error": str(exc)})
        return json_reply(200, self.config.public())

    def _result_url(self, task: SimTask) -> str:
        return f"{self.url}/results/{task.task_id}.mp4"
