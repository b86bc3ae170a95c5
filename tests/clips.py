"""Small synthetic "Sora-like" videos made with PyAV, for tests and benchmarks.

A Sora export is an H.264 MP4, portrait, with a small white "Sora" mark that jumps between a
few places on screen. These clips copy that shape at a size that encodes in milliseconds, so
tests can upload, probe and clean real video without shipping any.
"""

from fractions import Fraction
from pathlib import Path
from typing import cast

import av
from PIL import Image, ImageDraw

# Where the mark sits, as fractions of the frame, in the order it visits them.
MARK_SPOTS = ((0.08, 0.10), (0.55, 0.45), (0.10, 0.82))
MARK_SIZE = (0.30, 0.06)


def mark_box(index: int, width: int, height: int, fps: int) -> tuple[int, int, int, int]:
    """The mark's rectangle in frame `index`: it moves to the next spot every second."""
    x, y = MARK_SPOTS[(index // fps) % len(MARK_SPOTS)]
    left, top = int(x * width), int(y * height)
    return left, top, left + int(MARK_SIZE[0] * width), top + int(MARK_SIZE[1] * height)


def frame_image(index: int, width: int, height: int, fps: int, *, mark: bool) -> Image.Image:
    shade = (index * 4) % 200
    image = Image.new("RGB", (width, height), (30 + shade // 2, 60, 120 + shade // 3))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 3, 3 * width // 4, height // 3 + width // 2), fill="orange")
    if mark:
        draw.rounded_rectangle(mark_box(index, width, height, fps), radius=4, fill="white")
    return image


def make_clip(
    path: Path,
    *,
    seconds: float = 1.0,
    width: int = 144,
    height: int = 256,
    fps: int = 12,
    mark: bool = True,
    audio: bool = False,
    container: str = "mp4",
    codec: str = "libx264",
) -> Path:
    """Writes a playable clip to `path` and returns it."""
    frames = max(1, round(seconds * fps))
    with av.open(str(path), "w", format=container) as output:
        video = cast(av.VideoStream, output.add_stream(codec, rate=fps))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = output.add_stream("aac", rate=44100) if audio else None
        for index in range(frames):
            image = frame_image(index, width, height, fps, mark=mark)
            output.mux(video.encode(av.VideoFrame.from_image(image)))
        output.mux(video.encode())
        if sound is not None:
            _add_silence(output, sound, seconds)
    return path


def _add_silence(
    output: av.container.OutputContainer, sound: av.AudioStream, seconds: float
) -> None:
    samples, rate = 1024, 44100
    for start in range(0, int(seconds * rate), samples):
        frame = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        output.mux(sound.encode(frame))
    output.mux(sound.encode())
