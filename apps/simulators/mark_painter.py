"""What the SWC and Replicate simulators do instead of YOLO + LAMA: paint over bright marks.

Sora's mark is a small white logo; the synthetic clips of the tests draw a white rectangle.
Each decoded frame's brightest small region is filled with the colour just around it, and the
frames are encoded again as H.264 in an MP4 — a real, playable video that visibly differs
from the upload where the mark was. Pillow does the pixel work (numpy is not a dependency).

The sound is kept, as SoraWatermarkCleaner merges it back: the original's audio packets are
copied into the result as they are (remuxed, not encoded again), interleaved with the new
picture. Only a codec an MP4 cannot carry is encoded again, as AAC.
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
    source: Path,
    target: Path,
    *,
    on_progress: Callable[[float], None] = lambda share: None,
    keep_sound: bool = True,
) -> int:
    """Writes `source` without its marks to `target` (MP4), with its sound unless
    `keep_sound` is False (a simulated fault); returns the frames written."""
    try:
        inp = av.open(str(source))
    except av.FFmpegError as exc:
        raise NotAVideo(str(exc)) from exc
    with inp:
        if not inp.streams.video:
            raise NotAVideo("no video stream")
        in_stream = inp.streams.video[0]
        in_sound = inp.streams.audio[0] if keep_sound and inp.streams.audio else None
        rate = in_stream.average_rate or Fraction(24)
        total = in_stream.frames or 0
        written = 0
        with av.open(str(target), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=rate)
            # H.264 with 4:2:0 chroma needs even sides.
            stream.width = in_stream.codec_context.width // 2 * 2
            stream.height = in_stream.codec_context.height // 2 * 2
            stream.pix_fmt = "yuv420p"
            sound = _Sound(out, in_sound) if in_sound is not None else None
            wanted = [in_stream] if in_sound is None else [in_stream, in_sound]
            try:
                # One pass over the file in its own order: picture and sound stay interleaved.
                for packet in inp.demux(*wanted):
                    if packet.stream is not in_stream:
                        if sound is not None:
                            sound.add(packet)
                        continue
                    for frame in packet.decode():
                        if not isinstance(frame, av.VideoFrame):
                            continue
                        image = frame.to_image().crop((0, 0, stream.width, stream.height))
                        paint_frame(image)
                        out.mux(stream.encode(av.VideoFrame.from_image(image)))
                        written += 1
                        if total:
                            on_progress(min(1.0, written / total))
            except av.FFmpegError as exc:
                raise NotAVideo(str(exc)) from exc
            out.mux(stream.encode())
            if sound is not None:
                sound.finish()
    if not written:
        raise NotAVideo("no frames")
    return written


# Audio codecs an MP4 carries as they are; anything else is encoded again as AAC.
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


class _Sound:
    """The original's sound track in the result: its packets copied, or encoded again as AAC
    when an MP4 cannot carry its codec."""

    def __init__(self, out: av.container.OutputContainer, source: av.AudioStream) -> None:
        self._out = out
        self._copy = source.codec_context.name in MP4_AUDIO
        if self._copy:
            self._stream = out.add_stream_from_template(source)
        else:
            self._stream = out.add_stream("aac", rate=source.codec_context.sample_rate or 48000)

    def add(self, packet: av.Packet) -> None:
        if packet.dts is None:  # the demuxer's closing empty packet
            if not self._copy:
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        self._out.mux(self._stream.encode(frame))
            return
        if self._copy:
            packet.stream = self._stream
            self._out.mux(packet)
            return
        for frame in packet.decode():
            if isinstance(frame, av.AudioFrame):
                frame.pts = None  # the encoder counts its own samples
                self._out.mux(self._stream.encode(frame))

    def finish(self) -> None:
        if not self._copy:
            self._out.mux(self._stream.encode())


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
