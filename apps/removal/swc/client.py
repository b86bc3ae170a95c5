"""The client of one SoraWatermarkCleaner (SWC) server: its real HTTP API, nothing more.

SWC (github.com/linkedlist771/SoraWatermarkCleaner, `sorawm/server/`) is a FastAPI app with
no authentication that removes the mark on one GPU, one video at a time:

- `POST {prefix}/submit_remove_task`, multipart field `video` → `{"task_id", "message"}`
- `GET {prefix}/get_results?remove_task_id=ID` → `{"percentage", "status", "download_url"}`;
  status is UPLOADING, PROCESSING, FINISHED or ERROR (never with a reason); an unknown id is
  404 `{"detail": "Task does not exist."}`
- `GET {prefix}/download/ID` → the MP4; 400 until FINISHED, 404 when the file is gone
- `GET {prefix}/get_queue_status` (newer releases only)

Current releases mount these under `/api/v1`, older ones at the root: `detect_prefix()` finds
out which by asking questions whose answers tell them apart. `download_url` in results is
always `/download/ID` from the server root whatever the prefix, so download addresses are
built from the configured base instead.

Servers are operator configuration (often private addresses behind a reverse proxy that adds
an `Authorization` header), so unlike result links from Kie they are trusted as addresses.
Errors say what the pool should do: the server is down (mark it, send elsewhere), the task is
gone (send again), or the server refused the video (fail the job).
"""

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any, NamedTuple

import httpx

from apps.removal.base import PermanentError, RetryableError

logger = logging.getLogger(__name__)

CURRENT_PREFIX = "/api/v1"
LEGACY_PREFIX = ""
UPLOAD_CHUNK_BYTES = 1024 * 1024
# FastAPI's answer for an unknown task, as opposed to its `{"detail": "Not Found"}` for an
# unknown route: the one tells a lost task, the other a wrong prefix.
TASK_MISSING = "Task does not exist."
HEARTBEAT_SECONDS = 5.0


class SwcStatus(StrEnum):
    UPLOADING = "UPLOADING"
    PROCESSING = "PROCESSING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"


class SwcResult(NamedTuple):
    status: SwcStatus
    percentage: int


@dataclass
class ServerDown(RetryableError):
    """The server did not answer, or answered 5xx: mark it down and use another one.

    `unreachable` is set when nothing listened (connection refused, unknown host): the SWC
    process is gone, and its in-memory queue with it.
    """

    unreachable: bool = False


class TaskVanished(PermanentError):
    """The server no longer knows the task: it restarted and lost its queue."""


class VideoRefused(PermanentError):
    """The server (or the proxy in front of it) refused the upload itself (4xx)."""


class NotSwc(PermanentError):
    """The configured address answers, but not like an SWC server (wrong URL or prefix)."""


class SwcClient:
    """One configured server: its base address, its optional `Authorization` header, and a
    pooled HTTP client. `prefix` is None until known (see `detect_prefix`)."""

    def __init__(
        self,
        *,
        base_url: str,
        authorization: str = "",
        prefix: str | None = None,
        timeout_seconds: float = 10.0,
        upload_timeout_seconds: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix
        headers = {"Accept": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        self._timeout = httpx.Timeout(timeout_seconds)
        # An upload may wait on a slow link; reading its answer is quick once it is sent.
        self._upload_timeout = httpx.Timeout(timeout_seconds, write=upload_timeout_seconds)
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=self._timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    # --- the API ---------------------------------------------------------------------------
    def detect_prefix(self) -> str:
        """Which route layout the server has: `/api/v1` (current) or the root (older)."""
        for prefix in (CURRENT_PREFIX, LEGACY_PREFIX):
            response = self._request("GET", f"{prefix}/get_queue_status")
            if response.status_code in (401, 403) or response.status_code >= 500:
                self._raise_for_status(response, "get_queue_status")
            if response.status_code == 200:
                return prefix
            # Releases without get_queue_status: an unknown task id is answered with
            # "Task does not exist." only where the routes really are.
            response = self._request(
                "GET", f"{prefix}/get_results", params={"remove_task_id": "unmark-probe"}
            )
            if response.status_code == 404 and _detail(response) == TASK_MISSING:
                return prefix
        raise NotSwc(f"{self.base_url} does not answer like a SoraWatermarkCleaner server")

    def queue_status(self) -> dict[str, Any]:
        """The newer releases' queue metrics; answering at all proves the server is up."""
        response = self._request("GET", self._path("get_queue_status"))
        self._raise_for_status(response, "get_queue_status")
        body = _json(response)
        return body if isinstance(body, dict) else {}

    def submit(
        self,
        video: IO[bytes],
        *,
        size: int,
        filename: str = "video.mp4",
        heartbeat: Callable[[], None] = lambda: None,
    ) -> str:
        """Streams `size` bytes of `video` as the multipart field `video`; returns the task id.

        The body is generated chunk by chunk with a declared length (reverse proxies often
        refuse chunked uploads), so the file is never held in memory.
        """
        boundary = secrets.token_hex(16)
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="video"; filename="{filename}"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:
            yield head
            last_beat = time.monotonic()
            while chunk := video.read(UPLOAD_CHUNK_BYTES):
                yield chunk
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    heartbeat()
                    last_beat = time.monotonic()
            yield tail

        response = self._request(
            "POST",
            self._path("submit_remove_task"),
            content=body(),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + size + len(tail)),
            },
            timeout=self._upload_timeout,
        )
        if 400 <= response.status_code < 500:
            raise VideoRefused(
                f"the server refused the video: {_detail(response) or response.reason_phrase}",
                code=str(response.status_code),
            )
        self._raise_for_status(response, "submit_remove_task")
        body_json = _json(response)
        task_id = body_json.get("task_id") if isinstance(body_json, dict) else None
        if not isinstance(task_id, str) or not task_id.strip():
            raise ServerDown(f"submit_remove_task named no task id: {response.text[:120]!r}")
        return task_id.strip()

    def result(self, task_id: str) -> SwcResult:
        response = self._request(
            "GET", self._path("get_results"), params={"remove_task_id": task_id}
        )
        if response.status_code == 404 and _detail(response) == TASK_MISSING:
            raise TaskVanished(f"the server no longer knows task {task_id}", code="404")
        self._raise_for_status(response, "get_results")
        body = _json(response)
        if not isinstance(body, dict):
            raise ServerDown(f"get_results is not a JSON object: {response.text[:120]!r}")
        try:
            status = SwcStatus(str(body.get("status")))
        except ValueError:
            raise ServerDown(f"get_results has an unknown status: {body!r:.120}") from None
        percentage = body.get("percentage")
        if isinstance(percentage, bool) or not isinstance(percentage, int | float):
            percentage = 0
        return SwcResult(status, max(0, min(100, int(percentage))))

    def download_url(self, task_id: str) -> str:
        """Built from the configured base and prefix, never from the server's `download_url`."""
        return f"{self.base_url}{self._path('download')}/{task_id}"

    # --- plumbing --------------------------------------------------------------------------
    def _path(self, route: str) -> str:
        return f"{self.prefix or ''}/{route}"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        try:
            response = self.http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            _log(method, path, started, error=type(exc).__name__)
            raise ServerDown(
                f"{self.base_url} is not answering ({type(exc).__name__})", unreachable=True
            ) from exc
        except httpx.HTTPError as exc:
            _log(method, path, started, error=type(exc).__name__)
            raise ServerDown(f"{self.base_url} failed: {type(exc).__name__}: {exc}") from exc
        _log(method, path, started, status=response.status_code)
        return response

    def _raise_for_status(self, response: httpx.Response, route: str) -> None:
        if response.status_code in (401, 403):
            # SWC has no authentication: this is the reverse proxy refusing our header.
            raise NotSwc(
                f"{self.base_url} refused our Authorization header ({response.status_code})",
                code=str(response.status_code),
            )
        if response.status_code >= 500:
            raise ServerDown(
                f"{route} answered {response.status_code}", code=str(response.status_code)
            )
        if response.status_code == 404 and _detail(response) == "Not Found":
            raise NotSwc(f"{self.base_url} has no {route} route", code="404")
        if not response.is_success:
            raise ServerDown(
                f"{route} answered {response.status_code}: {_detail(response)}",
                code=str(response.status_code),
            )


def _json(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        return None


def _detail(response: httpx.Response) -> str:
    body = _json(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else ""


def _log(method: str, path: str, started: float, *, status: int = 0, error: str = "") -> None:
    context = {
        "method": method,
        "path": path,
        "elapsed_ms": round((time.monotonic() - started) * 1000),
    }
    if error:
        logger.warning("swc call failed", extra={**context, "error": error})
    else:
        logger.info("swc call", extra={**context, "http_status": status})
