"""The simulator's tasks: how one moves through Kie's states, and its record as Kie reports
it (`recordInfo`, and the body of its callback)."""

import json
import time
from dataclasses import dataclass
from typing import Any

from apps.simulators.kie.contract import MODEL


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


def record_data(task: SimTask, now: float, result_url: str) -> dict[str, Any]:
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
        data["resultJson"] = json.dumps({"resultUrls": [result_url]})
    return data


def now_ms() -> int:
    return int(time.time() * 1000)
