"""Cutting a video into segments by where the mark sits.

Why this exists: the mark stays put for seconds, then jumps. Per-frame detections are noisy
(on white backgrounds a white mark is invisible, so some marked frames score low), but a
segment is not: frames between two detections at the same spot carry the mark there too, and a
short run of detections is noise, not a mark (this is what keeps unmarked clips unmarked).
"""

from dataclasses import dataclass

import numpy as np

from .detect import Detection

# Detections of one segment agree to this many pixels.
POSITION_TOLERANCE = 2.0


@dataclass(frozen=True)
class Segment:
    place: int
    x: float
    y: float
    start: int  # first frame
    stop: int  # one past the last frame
    detected: int  # frames in [start, stop) where the detector saw the mark itself


@dataclass
class _Run:
    place: int
    frames: list[int]
    xs: list[float]
    ys: list[float]

    def accepts(self, d: Detection) -> bool:
        return (
            d.place == self.place
            and abs(d.x - float(np.median(self.xs))) <= POSITION_TOLERANCE
            and abs(d.y - float(np.median(self.ys))) <= POSITION_TOLERANCE
        )


def find_segments(
    detections: list[Detection | None],
    scores: list[list[float]],
    min_frames: int,
    max_extend: int,
) -> list[Segment]:
    runs: list[_Run] = []
    for index, d in enumerate(detections):
        if d is None:
            continue
        if runs and runs[-1].accepts(d):
            run = runs[-1]
        else:
            run = _Run(d.place, [], [], [])
            runs.append(run)
        run.frames.append(index)
        run.xs.append(d.x)
        run.ys.append(d.y)
    kept: list[_Run] = []
    for run in (r for r in runs if len(r.frames) >= min_frames):
        if (
            kept
            and kept[-1].place == run.place
            and kept[-1].accepts(
                Detection(run.place, float(np.median(run.xs)), float(np.median(run.ys)), 1.0)
            )
        ):
            # Same spot on both sides of a dropped blip: one segment.
            kept[-1].frames += run.frames
            kept[-1].xs += run.xs
            kept[-1].ys += run.ys
        else:
            kept.append(run)
    segments: list[Segment] = []
    total = len(detections)
    for i, run in enumerate(kept):
        first, last = run.frames[0], run.frames[-1]
        if i == 0:
            start = max(0, first - max_extend)
        else:
            start = max(_split(kept[i - 1], run, scores), first - max_extend)
        if i == len(kept) - 1:
            stop = min(total, last + 1 + max_extend)
        else:
            stop = min(_split(run, kept[i + 1], scores), last + 1 + max_extend)
        segments.append(
            Segment(
                place=run.place,
                x=float(np.median(run.xs)),
                y=float(np.median(run.ys)),
                start=start,
                stop=stop,
                detected=len(run.frames),
            )
        )
    return segments


def _split(before: _Run, after: _Run, scores: list[list[float]]) -> int:
    """The first frame of `after` in the undetected gap between two runs: where the summed
    evidence (each frame's score at one place minus the other) favours `after` the most."""
    lo, hi = before.frames[-1] + 1, after.frames[0]
    if lo >= hi or before.place == after.place:
        return (lo + hi) // 2
    lean = [scores[f][after.place] - scores[f][before.place] for f in range(lo, hi)]
    # Choosing cut c gives sum(lean[c-lo:]) to `after`: take the cut with the largest sum.
    tails = np.cumsum(lean[::-1])[::-1]
    return lo + int(np.argmax(tails))
