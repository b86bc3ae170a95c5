"""Callbacks as a simulator sends them: posted off the request path from a small pool of
threads, with headers made at the moment of sending (signatures carry a timestamp), and each
outcome ("sent: HTTP 200", "failed: …") reported back to the simulator."""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0


class WebhookSender:
    def __init__(self, *, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"{name}-webhook")
        self._http: httpx.Client | None = None  # built on the first webhook

    def send(
        self,
        url: str,
        body: bytes,
        *,
        headers: Callable[[], dict[str, str]],
        outcome: Callable[[str], None],
        times: int = 1,
    ) -> None:
        try:
            for _ in range(times):
                self._pool.submit(self._post, url, body, headers, outcome)
        except RuntimeError:  # stopping: the senders are gone
            logger.info(f"{self._name} webhook dropped at stop", extra={"url": url})

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._http is not None:
            self._http.close()

    def _post(
        self,
        url: str,
        body: bytes,
        headers: Callable[[], dict[str, str]],
        outcome: Callable[[str], None],
    ) -> None:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=TIMEOUT_SECONDS)
            http = self._http
        try:
            response = http.post(
                url, content=body, headers={"Content-Type": "application/json", **headers()}
            )
            result = f"sent: HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            result = f"failed: {type(exc).__name__}: {exc}"
            logger.warning(f"{self._name} webhook failed", extra={"url": url, "error": result})
        outcome(result)
