"""Kie's callbacks as the simulator sends them: the body when a task ends (its documented
shape), signed when the simulator has an HMAC key, posted by the shared `WebhookSender`."""

import base64
import hashlib
import hmac
import json
import threading
import time
from typing import Any

from apps.simulators.kie.contract import CREDITS_PER_TASK
from apps.simulators.kie.tasks import SimTask
from apps.simulators.webhooks import WebhookSender


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
    """Posts Kie's callbacks (signed when the simulator has an HMAC key); records each outcome
    on its task."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock  # the simulator's: task outcomes are read under it
        self._sender = WebhookSender(name="kie-sim")

    def send(self, task: SimTask, body: dict[str, Any], *, hmac_key: str, times: int) -> None:
        def headers() -> dict[str, str]:
            if not hmac_key:
                return {}
            timestamp = str(int(time.time()))
            message = f"{task.task_id}.{timestamp}".encode()
            digest = hmac.new(hmac_key.encode(), message, hashlib.sha256).digest()
            return {
                "X-Webhook-Timestamp": timestamp,
                "X-Webhook-Signature": base64.b64encode(digest).decode(),
            }

        def record(outcome: str) -> None:
            with self._lock:
                task.callback = outcome

        self._sender.send(
            task.callback_url,
            json.dumps(body).encode(),
            headers=headers,
            outcome=record,
            times=times,
        )

    def close(self) -> None:
        self._sender.close()
