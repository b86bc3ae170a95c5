"""`remove_watermark`: two streaming passes over the video.

Why this exists: it ties the stages together under the memory bound. Pass 1 decodes every frame
once to find the mark (place, sub-pixel spot) and keeps a thinned reservoir of luma crops per
place for the matte; nothing else is kept. Segments and mattes are settled between the passes.
Pass 2 decodes again with a window of 2 x REACH + 1 frames, restores the marked frames, encodes
every frame and copies the audio packets. The result is written to a temporary file beside the
destination and renamed into place only when complete, so a failure, `NoMarkFound` or
`Cancelled` leaves no output behind.
"""

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .arrays import F32, U8
from .detect import Detection, Detector
from .errors import Cancelled, NoMarkFound
from .matte import Matte, estimate_matte, place_prior
from .media import CRF, PRESET, Planes, Remuxer, VideoInfo, probe, read_frames
from .prior import ScaledPrior, load_prior
from .profile import SORA2, MarkProfile
from .recover import RADIUS, REACH, Layer, Recoverer, make_layer
from .report import Report, SegmentReport
from .segments import POSITION_TOLERANCE, Segment, find_segments

# Luma crops kept per place for the matte: enough for robust medians, flat in video length.
SAMPLES_PER_PLACE = 48
# Zero-opacity border kept around the mark's region (reference px), where the matte is anchored.
REGION_MARGIN = 8.0
# Frames restored at once (the machine this was sized for has two cores; x264 and the decoder
# run their own threads beside them).
RESTORE_THREADS = 2
# Frames searched for the mark at once (detection is pure; the decoder runs its own threads).
DETECT_THREADS = 2
# OpenCV's own thread pool: none. Frames are already restored in parallel; OpenCV splitting
# each small call over the same two cores only adds overhead (12.7 -> 11.8 CPU-seconds for the
# restore pass of bench/remover_speed.py's 10 s clip).
OPENCV_THREADS = 1
# Undetected frames at either end of a segment still count as marked up to this long.
MAX_EXTEND_SECONDS = 1.0

Progress = Callable[[int, int], None]
Stop = Callable[[], bool]


def _orient(planes: Planes, turns: int) -> Planes:
    """Rotate planes counter-clockwise by `turns` quarter turns (display <-> coded)."""
    if turns % 4 == 0:
        return planes
    return Planes(
        np.ascontiguousarray(np.rot90(planes.y, turns)),
        np.ascontiguousarray(np.rot90(planes.u, turns)),
        np.ascontiguousarray(np.rot90(planes.v, turns)),
        planes.pts,
        planes.rotation,
    )


def _region(prior: ScaledPrior, x: float, y: float, size: tuple[int, int]) -> tuple[int, ...]:
    """The mark's box plus the username line plus a margin, in whole pixels within the frame."""
    tw, th = prior.size
    ux, uy, uw, uh = prior.username_box
    m = REGION_MARGIN * prior.scale
    x0 = max(0, math.floor(min(x, x + ux) - m))
    y0 = max(0, math.floor(y - m))
    x1 = min(size[0], math.ceil(max(x + tw, x + ux + uw) + m))
    y1 = min(size[1], math.ceil(max(y + th, y + uy + uh) + m))
    return x0, y0, x1, y1


@dataclass
class _Reservoir:
    """Evenly thinned luma crops of one place: every `stride`-th detection, at most N kept."""

    stride: int = 1
    seen: int = 0
    crops: list[tuple[int, int, U8]] = field(default_factory=list)

    def add(self, x0: int, y0: int, crop: U8) -> None:
        if self.seen % self.stride == 0:
            self.crops.append((x0, y0, crop))
            if len(self.crops) > SAMPLES_PER_PLACE:
                self.crops = self.crops[::2]
                self.stride *= 2
        self.seen += 1

    def samples(self, rect: tuple[int, ...]) -> F32:
        x0, y0, x1, y1 = rect
        out = [
            crop[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
            for cx, cy, crop in self.crops
            if cx <= x0 and cy <= y0 and cx + crop.shape[1] >= x1 and cy + crop.shape[0] >= y1
        ]
        if not out:
            return np.zeros((0, y1 - y0, x1 - x0), np.float32)
        return np.stack(out).astype(np.float32)


@dataclass
class _Analysis:
    frames: int
    rotation: int
    size: tuple[int, int]  # display width, height
    detections: list[Detection | None]
    segments: list[Segment]
    reservoirs: dict[int, _Reservoir]
    white: float


def _analyse(
    src: Path, info: VideoInfo, profile: MarkProfile, stop: Stop, progress: Progress
) -> _Analysis:
    detector: Detector | None = None
    prior: ScaledPrior | None = None
    detections: list[Detection | None] = []
    scores: list[list[float]] = []
    reservoirs: dict[int, _Reservoir] = {}
    rotation, turns = 0, 0
    size = (info.width, info.height)
    pad = math.ceil(POSITION_TOLERANCE) + 1
    white = profile.white
    # Frames being searched by the workers (cv2 releases the GIL), in frame order.
    searching: deque[tuple[U8, Future[tuple[Detection | None, list[float]]]]] = deque()

    def record(keep: int) -> None:
        while len(searching) > keep:
            luma, future = searching.popleft()
            found, place_scores = future.result()
            detections.append(found)
            scores.append(place_scores)
            if found is not None and prior is not None:
                x0, y0, x1, y1 = _region(prior, found.x, found.y, size)
                x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
                x1, y1 = min(size[0], x1 + pad), min(size[1], y1 + pad)
                crop = luma[y0:y1, x0:x1].copy()
                reservoirs.setdefault(found.place, _Reservoir()).add(x0, y0, crop)
            done = len(detections)
            progress(done, 2 * max(info.frames_estimate, done))

    with ThreadPoolExecutor(max_workers=DETECT_THREADS, thread_name_prefix="detect") as workers:
        for planes in read_frames(src, info):
            if stop():
                raise Cancelled
            if detector is None or prior is None:
                rotation = planes.rotation
                turns = round(rotation / 90) % 4
                size = (info.height, info.width) if turns % 2 else (info.width, info.height)
                prior = load_prior(profile, *size)
                detector = Detector(prior, size[0], size[1], profile.detect_threshold)
                # The overlay's white in the luma plane, for limited ("TV") or full range.
                white = profile.white if info.full_range else 16.0 + 219.0 * profile.white / 255.0
            luma = _orient(planes, turns).y
            searching.append((luma, workers.submit(detector.detect, luma)))
            record(DETECT_THREADS)
        record(0)
    n = len(detections)
    min_frames = max(3, round(profile.min_segment_seconds * info.fps))
    extend = round(MAX_EXTEND_SECONDS * info.fps)
    segments = find_segments(detections, scores, min_frames, extend)
    return _Analysis(n, rotation, size, detections, segments, reservoirs, white)


def _mattes(
    analysis: _Analysis, profile: MarkProfile, shift: int
) -> tuple[list[Layer], list[Matte]]:
    prior = load_prior(profile, *analysis.size)
    body = float(np.median(prior.alpha[prior.alpha > 0.5]))
    layers: list[Layer] = []
    mattes: list[Matte] = []
    # Segments at the same place and region share one matte and one layer: a long video's
    # many segments at a handful of spots then hold a handful of layers (60 s clip: 24 -> 5).
    cache: dict[tuple[int, ...], tuple[Matte, Layer]] = {}
    for seg in analysis.segments:
        rect = _region(prior, seg.x, seg.y, analysis.size)
        key = (seg.place, *rect)
        if key not in cache:
            x0, y0, x1, y1 = rect
            placed = place_prior(prior.alpha, (y1 - y0, x1 - x0), seg.x - x0, seg.y - y0)
            samples = analysis.reservoirs[seg.place].samples(rect)
            band = np.zeros_like(placed, dtype=bool)
            ux, uy, uw, uh = prior.username_box
            bx0, by0 = max(0, round(seg.x + ux - x0)), max(0, round(seg.y + uy - y0))
            band[by0 : round(seg.y + uy + uh - y0), bx0 : round(seg.x + ux + uw - x0)] = True
            matte = estimate_matte(
                samples, placed, band, analysis.white, profile.alpha_range, body, prior.scale
            )
            layer = make_layer(
                x0, y0, matte.alpha, matte.white, shift, profile.recover_max_alpha, analysis.size
            )
            cache[key] = (matte, layer)
        matte, layer = cache[key]
        mattes.append(matte)
        layers.append(layer)
    return layers, mattes


def _restore_and_write(
    src: Path,
    tmp: Path,
    info: VideoInfo,
    analysis: _Analysis,
    layers: list[Layer],
    stop: Stop,
    progress: Progress,
) -> None:
    n = analysis.frames
    owner = np.full(n, -1, np.int32)
    for i, seg in enumerate(analysis.segments):
        owner[seg.start : seg.stop] = i
    turns = round(analysis.rotation / 90) % 4
    recoverer = Recoverer(1 if info.pix_fmt == "yuv420p" else 0)
    remuxer = Remuxer(src, tmp, info, analysis.rotation)
    # Decoded frames waiting to be restored: as decoded, and as displayed.
    pending: dict[int, tuple[Planes, Planes]] = {}
    # Frames being restored by the workers (cv2 and NumPy release the GIL), in output order.
    restoring: deque[tuple[int, Future[Planes] | Planes]] = deque()
    workers = ThreadPoolExecutor(max_workers=RESTORE_THREADS, thread_name_prefix="restore")

    def submit(j: int) -> None:
        recoverer.link(j + RADIUS)
        original, oriented = pending.pop(j)
        owner_of = int(owner[j]) if j < n else -1
        if owner_of < 0:
            restoring.append((j, original))
        else:
            restoring.append(
                (j, workers.submit(recoverer.restore, j, oriented, layers[owner_of], owner_of))
            )

    def write(keep: int) -> None:
        while len(restoring) > keep:
            j, item = restoring.popleft()
            planes = item if isinstance(item, Planes) else _orient(item.result(), -turns)
            remuxer.write(planes)
            progress(n + j + 1, 2 * n)
            recoverer.forget_written(j)

    try:
        index = -1
        for index, planes in enumerate(remuxer.frames()):
            if stop():
                raise Cancelled
            owner_of = int(owner[index]) if index < n else -1
            oriented = _orient(planes, turns)
            pending[index] = (planes, oriented)
            # The segments whose frames are within reach of this one will fuse it.
            targets = {
                i: layers[i]
                for i, seg in enumerate(analysis.segments)
                if seg.start - REACH <= index < seg.stop + REACH
            }
            recoverer.prepare(index, oriented, layers[owner_of] if owner_of >= 0 else None, targets)
            if index - REACH >= 0:
                submit(index - REACH)
                write(RESTORE_THREADS)
        for j in range(max(0, index - REACH + 1), index + 1):
            if stop():
                raise Cancelled
            submit(j)
        write(0)
        remuxer.finish()
    except BaseException:
        remuxer.close()
        raise
    finally:
        workers.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _opencv_threads(count: int) -> Iterator[None]:
    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def remove_watermark(
    src: Path,
    dst: Path,
    *,
    profile: MarkProfile = SORA2,
    on_progress: Progress | None = None,
    should_stop: Stop | None = None,
) -> Report:
    """Write `src` without `profile`'s mark to `dst` (MP4, H.264 + the source's audio).

    Raises NoMarkFound (nothing written) when no frame carries the mark, Cancelled when
    `should_stop()` turned true (nothing left behind), UnsupportedVideo for unreadable input.
    `on_progress(done, total)` counts frames over both passes (total = 2 x frames).
    """
    started = time.monotonic()
    src, dst = Path(src), Path(dst)
    info = probe(src)
    stop: Stop = should_stop or (lambda: False)
    progress: Progress = on_progress or (lambda done, total: None)
    with _opencv_threads(OPENCV_THREADS):
        analysis = _analyse(src, info, profile, stop, progress)
        if not analysis.segments:
            raise NoMarkFound(f"no {profile.name} mark in {src.name}")
        layers, mattes = _mattes(analysis, profile, 1 if info.pix_fmt == "yuv420p" else 0)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
        try:
            _restore_and_write(src, tmp, info, analysis, layers, stop, progress)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    return _report(profile, info, analysis, mattes, time.monotonic() - started)


def _report(
    profile: MarkProfile,
    info: VideoInfo,
    analysis: _Analysis,
    mattes: list[Matte],
    seconds: float,
) -> Report:
    prior = load_prior(profile, *analysis.size)
    fps = info.fps
    segments = []
    for seg, matte in zip(analysis.segments, mattes, strict=True):
        body = matte.alpha[matte.alpha > 0.5]
        segments.append(
            SegmentReport(
                place=prior.places[seg.place].name,
                x=round(seg.x, 2),
                y=round(seg.y, 2),
                start_frame=seg.start,
                stop_frame=seg.stop,
                start_seconds=round(seg.start / fps, 3),
                stop_seconds=round(seg.stop / fps, 3),
                detected_frames=seg.detected,
                matte=matte.source,
                opacity=round(float(np.median(body)) if body.size else 0.0, 3),
            )
        )
    return Report(
        profile=profile.name,
        frames=analysis.frames,
        marked_frames=sum(s.stop - s.start for s in analysis.segments),
        segments=tuple(segments),
        seconds=round(seconds, 3),
        had_audio=info.has_audio,
        width=info.width,
        height=info.height,
        fps=round(fps, 3),
        duration=round(info.duration, 3),
        rotation=analysis.rotation,
        pix_fmt=info.pix_fmt,
        crf=CRF,
        preset=PRESET,
    )
