"""What the SWC and Replicate simulators do instead of YOLO + LAMA: paint over bright marks.

Sora's mark is a small white logo; the synthetic clips of the tests draw a white rectangle.
Each decoded frame's brightest small region is filled with the colour just around it, and the
frames are encoded again as H.264 in an MP4 — a real, playable video that visibly differs
from the upload where the mark was. Pillow does the pixel work (numpy is not a dependency).
Sound is dropped: the simulator's output is for checking the pipeline, not for watching.
"""

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageStat

BRIGHT = 230  # luma at or above which a pixel may belong to the mark
MAX_MARK_SHARE = 0.15  # a bright area larger than this share of the frame is scenery, not a mark
MARGIN = 3  # pixels around the mark also painted, to take its soft encoded edge


class NotAVideo(Exception):
    """The upload could not be decoded as a video."""


def paint_over_marks(
    source: Path, target: Path, *, on_progress: Callable[[float], None] = lambda share: None
) -> int:
    """Writes `source` without its marks to `target` (MP4); returns the frames written."""
    try:
        inp = av.open(str(source))
    except av.FFmpegError as exc:
        raise NotAVideo(str(exc)) from exc
    with inp:
        if not inp.streams.video:
            raise NotAVideo("no video stream")
        in_stream = inp.streams.video[0]
        rate = in_stream.average_rate or Fraction(24)
        total = in_stream.frames or 0
        written = 0
        with av.open(str(target), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=rate)
            # H.264 with 4:2:0 chroma needs even sides.
            stream.width = in_stream.codec_context.width // 2 * 2
            stream.height = in_stream.codec_context.height // 2 * 2
            stream.pix_fmt = "yuv420p"
            try:
                for frame in inp.decode(in_stream):
                    image = frame.to_image().crop((0, 0, stream.width, stream.height))
                    paint_frame(image)
                    out.mux(stream.encode(av.VideoFrame.from_image(image)))
                    written += 1
                    if total:
                        on_progress(min(1.0, written / total))
            except av.FFmpegError as exc:
                raise NotAVideo(str(exc)) from exc
            out.mux(stream.encode())
    if not written:
        raise NotAVideo("no frames")
    return written


def paint_frame(image: Image.Image) -> bool:
    """Fills the frame's small bright region with the colour around it; False if none."""
    mask = image.convert("L").point(lambda luma: 255 if luma >= BRIGHT else 0)
    box = mask.getbbox()
    if box is None:
        return False
    left, top, right, bottom = box
    width, height = image.size
    if (right - left) * (bottom - top) > MAX_MARK_SHARE * width * height:
        return False
    left, top = max(0, left - MARGIN), max(0, top - MARGIN)
    right, bottom = min(width, right + MARGIN), min(height, bottom + MARGIN)
    draw = ImageDraw.Draw(image)
    draw.rectangle((left, top, right - 1, bottom - 1), fill=_surrounding_colour(image, box))
    return True


def _surrounding_colour(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, ...]:
    left, top, right, bottom = box
    height = image.height
    band = 2 * MARGIN
    strips = [
        (left, max(0, top - band), right, max(0, top - MARGIN)),
        (left, min(height, bottom + MARGIN), right, min(height, bottom + band)),
    ]
    medians = [
        ImageStat.Stat(image.crop(strip)).median
        for strip in strips
        if strip[3] > strip[1] and strip[2] > strip[0]
    ]
    if not medians:
        return (0, 0, 0)
    return tuple(round(sum(channel) / len(medians)) for channel in zip(*medians, strict=True))
