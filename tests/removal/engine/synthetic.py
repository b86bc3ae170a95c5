"""Ground-truth clips for the engine's tests and the quality benchmark.

Why this exists: quality can only be measured where the clean picture is known. This module
renders its own Sora 2-like mark (drawn at 8x resolution with OpenCV primitives and
downsampled with a sub-pixel offset, independently of the engine's prior, so measuring the
engine against it is not circular), lays it over moving pictures (natural pictures shipped in
scikit-image panned and zoomed, or procedural scenes), jumping between the mark's places, and
encodes the result as H.264 CRF 23 with AAC audio. The clean frames are never stored: a clip is
a pure function of its spec, so any frame can be made again.
"""

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

SUPERSAMPLE = 8
# The rendition's overlay: colour (RGB) and opacities, as measured on real Sora 2 frames.
WHITE = 254.0
BODY_ALPHA = 0.73
WORD_ALPHA = 0.74
USER_ALPHA = 0.70
EYE_ALPHA = 0.06
SPARKLE_ALPHA = 0.9
# Nominal places (reference 704-short-side px) of the mark box's top-left.
PORTRAIT_PLACES = {"top-left": (33, 80), "middle-right": (515, 612), "bottom-left": (33, 1113)}
LANDSCAPE_PLACES = {"top-left": (33, 48), "middle-right": (1091, 324), "bottom-left": (33, 577)}


@dataclass(frozen=True)
class ClipSpec:
    name: str
    width: int
    height: int
    seconds: float
    scene: str  # a skimage.data picture name, or "white", "dark", "stripes"
    speed: float = 1.0  # pan speed, reference px per frame
    zoom: float = 0.1  # zoom amplitude
    fps: int = 30
    marked: bool = True
    username: str = "@sora_fan_42"
    segment_seconds: float = 2.5
    places: tuple[str, ...] = ("bottom-left", "top-left", "middle-right")
    audio: bool = True
    seed: int = 0
    rotation: int = 0  # display rotation written to the container (degrees)
    crf: int = 23
    vfr: bool = False  # irregular frame durations: every third frame lasts two ticks
    jitter: tuple[float, ...] = field(default=())  # per place: x, y offsets (px), made if empty

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)

    @property
    def scale(self) -> float:
        return min(self.width, self.height) / 704.0


def _layer(shape: tuple[int, int]) -> np.ndarray:
    return np.zeros(shape, np.uint8)


def _disk(canvas: np.ndarray, cx: float, cy: float, r: float) -> None:
    cv2.circle(canvas, (round(cx), round(cy)), round(r), 255, -1, cv2.LINE_AA)


@lru_cache(maxsize=64)
def render_mark(scale: float, username: str, fx: float, fy: float) -> np.ndarray:
    """Opacity of the mark (mascot, eyes, "Sora", username) at `scale`, offset by (fx, fy) px.

    The box's top-left is at (fx, fy) of the returned array; it spans 240 x 100 reference px.
    """
    s = scale * SUPERSAMPLE
    h, w = math.ceil(100 * scale) + 2, math.ceil(240 * scale) + 2
    shape = (h * SUPERSAMPLE, w * SUPERSAMPLE)
    ox, oy = fx * SUPERSAMPLE, fy * SUPERSAMPLE
    # Geometry measured on a real frame (reference px from the box's top-left): mascot spans
    # x 3-51, y 3-53; the wordmark x 71-152, y 15-43.
    cx, cy = ox + 27.5 * s, oy + 28.5 * s
    # Cloud: a body and seven lobes.
    body = _layer(shape)
    _disk(body, cx, cy, 17.5 * s)
    for lobe in range(7):
        ang = 2 * math.pi * lobe / 7 + 0.3
        _disk(body, cx + 14 * s * math.cos(ang), cy + 14 * s * math.sin(ang), 10 * s)
    # Eyes: holes with a bright sparkle each.
    eyes, sparkles = _layer(shape), _layer(shape)
    for ex in (-6.5, 6.0):
        centre = (round(cx + ex * s), round(cy - 2 * s))
        axes = (round(4.2 * s), round(6.2 * s))
        cv2.ellipse(eyes, centre, axes, 0, 0, 360, 255, -1, cv2.LINE_AA)
        _disk(sparkles, cx + (ex - 1.3) * s, cy - 4.5 * s, 1.3 * s)
    word, user = _word(s, ox, oy, shape), _layer(shape)
    if username:
        org = (round(ox + 4 * s), round(oy + 72 * s))
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(user, username, org, font, 0.5 * s, 255, round(1.8 * s), cv2.LINE_AA)
    b, e, k, t, u = (x.astype(np.float32) / 255.0 for x in (body, eyes, sparkles, word, user))
    alpha = b * np.float32(BODY_ALPHA)
    alpha = alpha * (1 - e) + e * EYE_ALPHA * b
    alpha = alpha * (1 - k) + k * SPARKLE_ALPHA
    alpha = np.maximum(alpha, t * WORD_ALPHA)
    alpha = np.maximum(alpha, u * USER_ALPHA)
    return cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)


def _word(s: float, ox: float, oy: float, shape: tuple[int, int]) -> np.ndarray:
    """ "Sora" in a bold Hershey face, stretched onto the real wordmark's box."""
    text = np.zeros((int(60 * s), int(160 * s)), np.uint8)
    cv2.putText(
        text,
        "Sora",
        (int(5 * s), int(45 * s)),
        cv2.FONT_HERSHEY_DUPLEX,
        1.2 * s,
        255,
        round(4.6 * s),
        cv2.LINE_AA,
    )
    ys, xs = np.nonzero(text > 127)
    ink = text[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    x0, y0 = round(ox + 71 * s), round(oy + 15 * s)
    w, h = round(81 * s), round(28 * s)
    out = np.zeros(shape, np.uint8)
    out[y0 : y0 + h, x0 : x0 + w] = cv2.resize(ink, (w, h), interpolation=cv2.INTER_AREA)
    return out


def place_positions(spec: ClipSpec) -> dict[str, tuple[float, float]]:
    """Each place's exact top-left for this clip: nominal + a fixed jitter, sub-pixel."""
    table = PORTRAIT_PLACES if spec.width < spec.height else LANDSCAPE_PLACES
    rng = np.random.default_rng(1000 + spec.seed)
    out = {}
    for name, (x, y) in table.items():
        jx, jy = rng.uniform(-6, 6), rng.uniform(-6, 6)
        out[name] = (x * spec.scale + jx * spec.scale, y * spec.scale + jy * spec.scale)
    return out


def mark_at(spec: ClipSpec, index: int) -> tuple[str, np.ndarray, int, int] | None:
    """Where the mark is in frame `index`: (place, opacity crop, x0, y0), or None."""
    if not spec.marked:
        return None
    seg = int(index / (spec.segment_seconds * spec.fps))
    place = spec.places[seg % len(spec.places)]
    x, y = place_positions(spec)[place]
    x0, y0 = math.floor(x), math.floor(y)
    alpha = render_mark(round(spec.scale, 4), spec.username, x - x0, y - y0)
    return place, alpha, x0, y0


def full_alpha(spec: ClipSpec, index: int) -> np.ndarray:
    """The mark's opacity over the whole frame (zeros when unmarked)."""
    out = np.zeros((spec.height, spec.width), np.float32)
    found = mark_at(spec, index)
    if found is None:
        return out
    _, alpha, x0, y0 = found
    h = min(alpha.shape[0], spec.height - y0)
    w = min(alpha.shape[1], spec.width - x0)
    out[y0 : y0 + h, x0 : x0 + w] = alpha[:h, :w]
    return out


@lru_cache(maxsize=4)
def _source(scene: str, seed: int) -> np.ndarray:
    """An RGB picture larger than any frame, to pan and zoom over."""
    size = 1600
    if scene in ("white", "dark", "stripes"):
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        if scene == "white":
            # Overcast sky: near-white with soft brighter/darker clouds (white mark on white).
            noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 25)
            base = 238 + 14 * noise / noise.std() + 6 * np.sin(xx / 90)
            img = np.stack([base - 3, base - 1, base + 2], -1)
        elif scene == "dark":
            noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 6)
            base = 22 + 12 * noise / noise.std()
            dots = (rng.random((size, size)) > 0.9985).astype(np.float32)
            stars = np.asarray(cv2.GaussianBlur(dots, (0, 0), 1.2)) * 900
            img = np.stack([base + stars, base + 4 + stars, base + 12 + stars], -1)
        else:
            img = np.stack(
                [
                    128 + 100 * np.sin(xx / 23 + yy / 57),
                    128 + 90 * np.cos(yy / 31),
                    128 + 80 * np.sin((xx + yy) / 47),
                ],
                -1,
            )
        return np.clip(img, 0, 255).astype(np.uint8)
    from skimage import data

    pic = getattr(data, scene)()
    if pic.ndim == 2:
        pic = np.stack([pic] * 3, -1)
    pic = pic[..., :3]
    f = size / min(pic.shape[:2])
    return cv2.resize(pic, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)


def clean_frame(spec: ClipSpec, index: int) -> np.ndarray:
    """The unmarked RGB frame `index`: the source seen through a panning, zooming camera."""
    src = _source(spec.scene, spec.seed)
    sh, sw = src.shape[:2]
    t = index / spec.fps
    # Fit the frame inside the source with room to move, then pan back and forth and zoom.
    base = 0.8 * min(sw / spec.width, sh / spec.height)
    zoom = base * (1.0 - spec.zoom * 0.5 * (1 - math.cos(2 * math.pi * t / 5.0)))
    span_x = sw - spec.width * zoom
    span_y = sh - spec.height * zoom
    travel = spec.speed * index * spec.scale * zoom
    px = (span_x / 2) + (span_x / 2 - 1) * math.sin(travel / max(span_x, 1.0) * 2.0)
    py = (span_y / 2) + (span_y / 2 - 1) * math.sin(travel / max(span_y, 1.0) * 1.3 + 0.7)
    m = np.array([[1 / zoom, 0, -px / zoom], [0, 1 / zoom, -py / zoom]], np.float32)
    return cv2.warpAffine(src, m, (spec.width, spec.height), flags=cv2.INTER_LINEAR)


def marked_frame(spec: ClipSpec, index: int) -> np.ndarray:
    clean = clean_frame(spec, index).astype(np.float32)
    alpha = full_alpha(spec, index)[..., None]
    return np.clip(alpha * WHITE + (1 - alpha) * clean + 0.5, 0, 255).astype(np.uint8)


def write_clip(spec: ClipSpec, path: Path) -> Path:
    """Encode the marked clip (H.264 CRF 23, AAC) and its spec beside it (`.json`)."""
    # Frames are drawn as displayed; a rotated clip stores them turned back (coded orientation).
    turns = round(spec.rotation / 90) % 4
    width, height = (spec.height, spec.width) if turns % 2 else (spec.width, spec.height)
    odd = width % 2 or height % 2
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv444p" if odd else "yuv420p"
        video.options = {"crf": str(spec.crf), "preset": "veryfast"}
        if spec.rotation:
            video.set_display_rotation(spec.rotation)
        audio = out.add_stream("aac", rate=48000) if spec.audio else None
        for i in range(spec.frames):
            rgb = np.ascontiguousarray(np.rot90(marked_frame(spec, i), -turns))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i + i // 3 if spec.vfr else i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            rng = np.random.default_rng(spec.seed)
            samples = round(spec.seconds * 48000)
            t = np.arange(samples) / 48000.0
            wave = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.normal(size=samples)
            stereo = np.stack([wave, wave]).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = np.ascontiguousarray(stereo[:, start : start + 1024])
                sound = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                sound.sample_rate = 48000
                sound.pts = start
                for packet in audio.encode(sound):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    path.with_suffix(".json").write_text(json.dumps(asdict(spec)))
    return path


def load_spec(path: Path) -> ClipSpec:
    raw = json.loads(path.with_suffix(".json").read_text())
    raw["places"] = tuple(raw["places"])
    raw["jitter"] = tuple(raw["jitter"])
    return ClipSpec(**raw)
