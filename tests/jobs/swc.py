"""Helpers for SWC tests: simulators on ephemeral ports, clips, and reading results back."""

import time
from collections.abc import Callable
from pathlib import Path

import av
from PIL import ImageStat

from apps.jobs.providers.swc import SwcClient, SwcResult, SwcStatus
from tests.clips import mark_box

CLIP_SIZE = (144, 256)
CLIP_FPS = 12


def wait_for(condition: Callable[[], object], *, seconds: float = 10, what: str) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_final(client: SwcClient, task_id: str, *, seconds: float = 10) -> SwcResult:
    def final() -> SwcResult | None:
        result = client.result(task_id)
        return result if result.status in (SwcStatus.FINISHED, SwcStatus.ERROR) else None

    return wait_for(final, seconds=seconds, what=f"task {task_id} to end")  # type: ignore[return-value]


def mark_brightness(path: Path) -> list[float]:
    """Mean luma inside the mark's box, frame by frame: near 255 where the mark is drawn."""
    values = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            box = mark_box(index, *CLIP_SIZE, CLIP_FPS)
            values.append(ImageStat.Stat(frame.to_image().convert("L").crop(box)).mean[0])
    return values
