"""Kie's callbacks as the simulator sends them: the body when a task ends (its documented
shape), signed when the simulator has an HMAC key, posted from a small pool of threads."""

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from apps.jobs.simulators.kie.contract import CREDITS_PER_TASK
from apps.jobs.simulators.kie.tasks import SimTask

logger = logging.getLogger(__name__)

CALLBACK_TIMEOUT_SECONDS = 15.0


def callback_body(task: SimTask, record: dict[str, Any], credits: int) -> dict[str, Any]:
    data = dict(record)
    # Callbacks report costTime in seconds (recordInfo in milliseconds), as Kie's do.
    data["costTime"] = max(1, round(task.latency))
    data["consumeCredits"] = 0 if task.fails else CREDITS_PER_TASK
    data["remainedCredits"] = credits
    if task.fails:
        data["resultJson"] = None
        return {"code": 501, "msg": "Playground task failed.", "data": data}
    return {"code": 200, "msg": "Playground task completed successfully.", "data": data}


class CallbackSender:
    """Posts callbacks off the request path; records each outcome on its task."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock  # the simulator's: task outcomes are read under it
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kie-sim-callback")
        self._http: httpx.Client | None = None  # built on the first callback

    def send(self, task: SimTask, body: dict[str, Any], *, hmac_key: str, times: int) -> None:
        try:
            for _ in range(times):
                self._pool.submit(self._post, task, body, hmac_key)
        except RuntimeError:  # stopping: the senders are gone
            logger.info("kie-sim callback dropped at stop", extra={"task_id": task.task_id})

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._http is not None:
            self._http.close()

    def _post(self, task: SimTask, body: dict[str, Any], hmac_key: str) -> None:
        headers = {"Content-Type": "application/json"}
        if hmac_key:
            timestamp = str(int(time.time()))
            message = f"{task.task_id}.{timestamp}".encode()
            digest = hmac.new(hmac_key.encode(), message, hashlib.sha256).digest()
            headers["X-Webhook-Timestamp"] = timestamp
            headers["X-Webhook-Signature"] = base64.b64encode(digest).decode()
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=CALLBACK_TIMEOUT_SECONDS)
            http = self._http
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
