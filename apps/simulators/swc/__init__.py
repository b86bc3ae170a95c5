"""The SWC simulator: SoraWatermarkCleaner's server API, quirks included, on loopback.

`make run` starts two (`manage.py swc_simulator`) so uploads work without a GPU; tests and the
pool benchmark start them on ephemeral ports and talk to them over real sockets. Like the real
server (`sorawm/server/` upstream) it:

- answers `submit_remove_task` as soon as the upload is read (status UPLOADING), then queues
  the task (PROCESSING at 0 %) in an in-memory FIFO that one worker thread runs one video at a
  time (10 % at the start of a run, up to 100 % and FINISHED);
- gives ERROR without a reason, 404 `Task does not exist.` for unknown ids, 400 from
  `download` until FINISHED, FastAPI's `{"detail": ...}` shapes throughout;
- serves the routes under `/api/v1` with `get_queue_status` (current releases) or at the root
  without it (`legacy_routes`, older releases);
- loses its queue on restart: a stopped simulator's tasks are gone (404) when a new one starts
  on the same port, and `POST /__sim__/restart {"keep_records": true}` keeps the records
  frozen at PROCESSING forever instead, as a server with its SQLite file does.

Faults: `failure_rate` (ERROR), `stall_rate` (the run freezes, percentage and all, until a
restart — the whole server is wedged, as a hung GPU run wedges SWC), `drops_sound` (results
without their audio). The result is the upload with its marks painted over (`mark_painter`), a
real MP4 with the upload's sound, as upstream merges it back. `get_queue_status`'s body is this
simulator's own shape: upstream documents none, and the client only needs it to answer.
The server is the simulators' shared one (`simulators.http`); uploads are streamed to disk.
"""

import dataclasses
import hashlib
import hmac
import json
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from apps.removal.swc.client import CURRENT_PREFIX, TASK_MISSING
from apps.simulators.config import coerce_changes
from apps.simulators.http import Reply, file_reply, read_body, serve
from apps.simulators.mark_painter import NotAVideo, paint_over_marks

COPY_CHUNK_BYTES = 256 * 1024
PROGRESS_STEP_SECONDS = 0.05
START_PERCENTAGE = 10  # what SWC reports when a run starts


@dataclass
class SwcSimConfig:
    seconds_per_video: float = 2.0  # one run, start to FINISHED (painting included)
    failure_rate: float = 0.0  # share of runs that end in ERROR
    stall_rate: float = 0.0  # share of runs that freeze mid-way until a restart
    legacy_routes: bool = False  # routes at the root, without get_queue_status
    upload_seconds: float = 0.05  # UPLOADING lasts this long after the answer
    # Playing the reverse proxy in front of SWC: refuse requests without this Authorization
    # header (401), or answer every API call with this status (502: the backend is down).
    required_authorization: str = ""
    proxy_status: int = 0
    max_upload_bytes: int = 0  # the proxy's body-size limit (413 above it); 0: none
    # A build that forgets to merge the sound back: results come without the original's audio.
    drops_sound: bool = False

    def __post_init__(self) -> None:
        problems = [
            (self.seconds_per_video < 0, "seconds_per_video must not be negative"),
            (not 0 <= self.failure_rate <= 1, "failure_rate must be between 0 and 1"),
            (not 0 <= self.stall_rate <= 1, "stall_rate must be between 0 and 1"),
            (self.upload_seconds < 0, "upload_seconds must not be negative"),
            (self.proxy_status not in (0, 500, 502, 503, 504), "proxy_status must be 0 or 5xx"),
        ]
        errors = [message for failed, message in problems if failed]
        if errors:
            raise ValueError("; ".join(errors))


@dataclass
class SimTask:
    task_id: str
    filename: str
    upload: Path
    output: Path
    upload_size: int
    upload_sha256: str
    status: str = "UPLOADING"
    percentage: int = 0
    downloads: int = 0


def _detail(status: int, detail: object) -> Reply:
    return Reply(status, json.dumps({"detail": detail}).encode())


class SwcSimulator:
    """State and answers of one simulated SWC server; `start()` serves it from a thread."""

    def __init__(self, config: SwcSimConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._config = config
        self._lock = threading.Condition()
        self._tasks: dict[str, SimTask] = {}
        self._queue: deque[str] = deque()
        self._running: str | None = None
        self._generation = 0  # bumped by a restart: the run in progress is abandoned
        self._peak_open = 0  # most tasks uploading, queued or running at once
        self._random = random.Random()  # noqa: S311 (fault draws, not secrets)
        self._stopping = threading.Event()
        self._dir = Path(tempfile.mkdtemp(prefix="swc-sim-"))
        self._server = serve(self, host, port, name="SWC simulator")
        self._threads: list[threading.Thread] = []
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self.port = int(self._server.server_address[1])

    # --- running ---------------------------------------------------------------------------
    def start(self) -> "SwcSimulator":
        serving = threading.Thread(target=self.serve_forever, name="swc-sim", daemon=True)
        serving.start()
        self._threads.append(serving)
        return self

    def serve_forever(self) -> None:
        worker = threading.Thread(target=self._work, name="swc-sim-gpu", daemon=True)
        worker.start()
        self._threads.append(worker)
        try:
            self._server.serve_forever(poll_interval=0.05)
        finally:
            self._stopping.set()

    def stop(self) -> None:
        """Like the process dying: it stops answering and everything it held is gone."""
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- control (tests, /__sim__/) --------------------------------------------------------
    def configure(self, **changes: Any) -> SwcSimConfig:
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)
            self._lock.notify_all()
            return self._config

    @property
    def config(self) -> SwcSimConfig:
        with self._lock:
            return self._config

    def restart(self, *, keep_records: bool) -> None:
        """The server process restarted: its queue and the run in progress are lost.

        With `keep_records`, the tasks stay known, stuck at PROCESSING forever (upstream keeps
        them in SQLite); without, they vanish (404).
        """
        with self._lock:
            self._generation += 1
            self._queue.clear()
            self._running = None
            if keep_records:
                for task in self._tasks.values():
                    if task.status in ("UPLOADING", "PROCESSING"):
                        task.status = "PROCESSING"
            else:
                self._tasks.clear()
            self._lock.notify_all()

    def seen(self) -> dict[str, Any]:
        with self._lock:
            return {
                "tasks": [
                    {
                        "task_id": task.task_id,
                        "status": task.status,
                        "percentage": task.percentage,
                        "downloads": task.downloads,
                        "filename": task.filename,
                        "upload_size": task.upload_size,
                        "upload_sha256": task.upload_sha256,
                    }
                    for task in self._tasks.values()
                ],
                "queue": list(self._queue),
                "running": self._running,
                "peak_open": self._peak_open,
                "config": dataclasses.asdict(self._config),
            }

    # --- the worker: one video at a time -------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                while not self._queue and not self._stopping.is_set():
                    self._lock.wait(0.5)
                if self._stopping.is_set():
                    return
                task = self._tasks[self._queue.popleft()]
                self._running = task.task_id
                generation = self._generation
                config = self._config
                task.status, task.percentage = "PROCESSING", START_PERCENTAGE
                fails = self._random.random() < config.failure_rate
                stalls = self._random.random() < config.stall_rate
            self._run(task, generation, config, fails=fails, stalls=stalls)

    def _run(
        self, task: SimTask, generation: int, config: SwcSimConfig, *, fails: bool, stalls: bool
    ) -> None:
        started = time.monotonic()

        def current() -> bool:
            return self._generation == generation and not self._stopping.is_set()

        def report(share: float) -> None:
            with self._lock:
                if current():
                    span = 100 - START_PERCENTAGE - 5
                    task.percentage = max(task.percentage, START_PERCENTAGE + int(share * span))

        try:
            paint_over_marks(
                task.upload,
                task.output,
                on_progress=lambda s: report(s / 2),
                keep_sound=not config.drops_sound,
            )
        except NotAVideo:
            fails = True
        stall_at = started + config.seconds_per_video * self._random.uniform(0.2, 0.8)
        while (elapsed := time.monotonic() - started) < config.seconds_per_video:
            if stalls and time.monotonic() >= stall_at:
                self._wedge(generation)
                return
            report(0.5 + elapsed / config.seconds_per_video / 2)
            if self._stopping.wait(PROGRESS_STEP_SECONDS) or not current():
                return
        with self._lock:
            if not current():
                return
            self._running = None
            if fails:
                task.status, task.percentage = "ERROR", 0
            else:
                task.status, task.percentage = "FINISHED", 100
            task.upload.unlink(missing_ok=True)

    def _wedge(self, generation: int) -> None:
        """A stalled run: nothing moves on this server until it restarts."""
        with self._lock:
            while self._generation == generation and not self._stopping.is_set():
                self._lock.wait(0.5)

    # --- answers ---------------------------------------------------------------------------
    def answer(
        self, method: str, target: str, headers: dict[str, str], body: BinaryIO, length: int
    ) -> Reply:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        if path.startswith("/__sim__/"):
            return self._control(method, path, read_body(body, length))
        config = self.config
        if config.required_authorization and not hmac.compare_digest(
            headers.get("authorization", "").encode(), config.required_authorization.encode()
        ):
            return Reply(401, _proxy_page("401 Authorization Required"), "text/html")
        if config.proxy_status:
            return Reply(
                config.proxy_status, _proxy_page(f"{config.proxy_status} Bad Gateway"), "text/html"
            )
        prefix = "" if config.legacy_routes else CURRENT_PREFIX
        if not path.startswith(f"{prefix}/"):
            return _detail(404, "Not Found")
        route = path.removeprefix(prefix)
        if route == "/submit_remove_task":
            if method != "POST":
                return _detail(405, "Method Not Allowed")
            if config.max_upload_bytes and length > config.max_upload_bytes:
                _discard(body, length)
                return Reply(413, _proxy_page("413 Request Entity Too Large"), "text/html")
            return self._submit(headers, body, length)
        if method != "GET":
            return _detail(405, "Method Not Allowed")
        if route == "/get_results":
            return self._results(query)
        if route.startswith("/download/"):
            return self._download(route.removeprefix("/download/"))
        if route == "/get_queue_status" and not self.config.legacy_routes:
            with self._lock:
                status = {
                    "queue_size": len(self._queue),
                    "is_processing": self._running is not None,
                    "current_task_id": self._running,
                    "total_tasks": len(self._tasks),
                }
            return Reply(200, json.dumps(status).encode())
        return _detail(404, "Not Found")

    def _submit(self, headers: dict[str, str], body: BinaryIO, length: int) -> Reply:
        content_type = headers.get("content-type", "")
        boundary = _boundary(content_type)
        task_id = str(uuid.uuid4())
        upload = self._dir / f"{task_id}.upload"
        filename = _read_video_part(body, length, boundary, upload) if boundary else None
        if filename is None:
            upload.unlink(missing_ok=True)
            missing = {"type": "missing", "loc": ["body", "video"], "msg": "Field required"}
            return _detail(422, [{**missing, "input": None}])
        task = SimTask(
            task_id,
            filename,
            upload,
            self._dir / f"{task_id}.mp4",
            upload_size=upload.stat().st_size,
            upload_sha256=_sha256(upload),
        )
        with self._lock:
            self._tasks[task_id] = task
            generation = self._generation
            open_now = sum(t.status in ("UPLOADING", "PROCESSING") for t in self._tasks.values())
            self._peak_open = max(self._peak_open, open_now)
            delay = self._config.upload_seconds
        # Upstream answers first and writes the file and queues the task in the background.
        timer = threading.Timer(delay, self._enqueue, args=(task_id, generation))
        timer.daemon = True
        timer.start()
        return Reply(200, json.dumps({"task_id": task_id, "message": "Task submitted."}).encode())

    def _enqueue(self, task_id: str, generation: int) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or generation != self._generation or self._stopping.is_set():
                return
            task.status, task.percentage = "PROCESSING", 0
            # Upstream's queue takes videos in the order they were submitted; our upload
            # timers can fire out of order, so the queue keeps submission order itself.
            order = {known: n for n, known in enumerate(self._tasks)}
            self._queue = deque(sorted([*self._queue, task_id], key=order.__getitem__))
            self._lock.notify_all()

    def _results(self, query: dict[str, list[str]]) -> Reply:
        task_id = (query.get("remove_task_id") or [""])[0]
        if not task_id:
            missing = {"type": "missing", "loc": ["query", "remove_task_id"]}
            return _detail(422, [{**missing, "msg": "Field required", "input": None}])
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return _detail(404, TASK_MISSING)
            finished = task.status == "FINISHED"
            result = {
                "percentage": task.percentage,
                "status": task.status,
                "download_url": f"/download/{task_id}" if finished else None,
            }
        return Reply(200, json.dumps(result).encode())

    def _download(self, task_id: str) -> Reply:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return _detail(404, TASK_MISSING)
            if task.status != "FINISHED":
                return _detail(400, f"Task not finish yet: {task.status}")
            if not task.output.exists():
                return _detail(404, "Output file does not exits")
            task.downloads += 1
        return file_reply(task.output, "video/mp4")

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        if path == "/__sim__/tasks" and method == "GET":
            return Reply(200, json.dumps(self.seen(), indent=1).encode())
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object")
            if path == "/__sim__/restart" and method == "POST":
                self.restart(keep_records=bool(changes.get("keep_records")))
                return Reply(200, b'{"restarted": true}')
            if path == "/__sim__/config" and method == "POST":
                config = self.configure(**coerce_changes(SwcSimConfig, changes))
                return Reply(200, json.dumps(dataclasses.asdict(config)).encode())
        except (ValueError, TypeError, RecursionError) as exc:
            return Reply(400, json.dumps({"error": str(exc)}).encode())
        return Reply(404, b'{"error": "no such control"}')


def _boundary(content_type: str) -> bytes | None:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode()
    return None


def _read_video_part(body: IO[bytes], length: int, boundary: bytes, target: Path) -> str | None:
    """Streams the multipart body, writing the `video` part's content to `target`.

    Returns the part's file name, or None when there is no `video` part. Other parts are
    skipped; nothing is held in memory beyond one chunk and a delimiter's length.
    """
    reader = _Reader(body, length)
    delimiter = b"\r\n--" + boundary
    if reader.read_until(b"--" + boundary + b"\r\n", None) is None:
        return None
    found: str | None = None
    while True:
        head = reader.read_until(b"\r\n\r\n", None, limit=16 * 1024)
        if head is None:
            return found
        disposition = _disposition(head)
        if disposition.get("name") == "video" and found is None:
            with target.open("wb") as out:
                if reader.read_until(delimiter, out) is None:
                    return None
            found = disposition.get("filename") or "video.mp4"
        elif reader.read_until(delimiter, None) is None:
            return found
        if reader.read_exact(2) != b"\r\n":  # "--" closes the body
            return found


class _Reader:
    """Reads at most `length` bytes of a request body, splitting it at delimiters."""

    def __init__(self, body: IO[bytes], length: int) -> None:
        self._body, self._left, self._buffer = body, length, b""

    def _fill(self) -> bool:
        if self._left <= 0:
            return False
        chunk = self._body.read(min(COPY_CHUNK_BYTES, self._left))
        if not chunk:
            self._left = 0
            return False
        self._left -= len(chunk)
        self._buffer += chunk
        return True

    def read_until(
        self, delimiter: bytes, out: IO[bytes] | None, *, limit: int | None = None
    ) -> bytes | None:
        """Consumes up to and including `delimiter`; what came before goes to `out` (or is
        returned when `out` is None and `limit` is set). None if the body ends first."""
        kept = b""
        while True:
            index = self._buffer.find(delimiter)
            if index >= 0:
                before, self._buffer = self._buffer[:index], self._buffer[index + len(delimiter) :]
                if out is not None:
                    out.write(before)
                return kept + before if limit is not None else b""
            # Keep a delimiter's length back: it may straddle two reads.
            safe = max(0, len(self._buffer) - len(delimiter) + 1)
            if out is not None:
                out.write(self._buffer[:safe])
            elif limit is not None:
                kept += self._buffer[:safe]
                if len(kept) > limit:
                    return None
            self._buffer = self._buffer[safe:]
            if not self._fill():
                return None

    def read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size and self._fill():
            pass
        taken, self._buffer = self._buffer[:size], self._buffer[size:]
        return taken


def _disposition(head: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in head.decode("utf-8", errors="replace").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() != "content-disposition":
            continue
        for param in value.split(";")[1:]:
            key, _, raw = param.strip().partition("=")
            values[key.lower()] = raw.strip('"')
    return values


def _discard(body: BinaryIO, length: int) -> None:
    while length > 0 and (chunk := body.read(min(COPY_CHUNK_BYTES, length))):
        length -= len(chunk)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _proxy_page(title: str) -> bytes:
    """What nginx in front of SWC answers when it refuses a request or loses the backend."""
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>".encode()
