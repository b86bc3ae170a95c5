"""Reading and writing video with PyAV, one frame at a time.

Why this exists: the engine never holds a whole video. Frames are decoded one by one into
planar YUV arrays (the codec's own samples: no colour conversion, so pixels the engine does not
touch pass to the encoder unchanged), and written back with libx264 while every audio packet is
copied as it was read (remuxed, not re-encoded). Timestamps are kept frame by frame, so variable
frame rate survives; the display matrix (rotation) is written back as it was read.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import VideoFrame

from .arrays import U8
from .errors import UnsupportedVideo

# Visually lossless for 8-bit H.264: measured >= 47 dB PSNR against the decoded input on the
# quality corpus (see README). `veryfast` keeps CABAC and B-frames, so files stay near the
# source's size, at about 80 frames/s on two cores for 704x1280.
CRF = 18
PRESET = "veryfast"
# Slice threads instead of frame threads: x264 then holds no frames in flight per thread
# (peak RSS 207 -> 175 MB for decode + encode of a 704x1280 clip), at the same CPU time and
# file size (measured on bench/remover_speed.py's clip).
X264_PARAMS = "sliced-threads=1"


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    rate: Fraction
    time_base: Fraction
    frames_estimate: int
    duration: float
    has_audio: bool
    full_range: bool  # JPEG ("full") range: white luma is 255, not 235
    pix_fmt: str  # the planar format the engine works in and encodes to


@dataclass
class Planes:
    """One frame's samples: Y, U, V as uint8 arrays; `pts` in the stream's time base."""

    y: U8
    u: U8
    v: U8
    pts: int | None
    rotation: int


def work_format(width: int, height: int) -> str:
    # 4:2:0 H.264 cannot code odd sizes; 4:4:4 can, so odd-sized videos keep their size.
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


def probe(path: Path) -> VideoInfo:
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise UnsupportedVideo(f"cannot open {path.name}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise UnsupportedVideo(f"{path.name} has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        time_base = stream.time_base or Fraction(1, 90000)
        if stream.duration is not None:
            duration = float(stream.duration * time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frames = stream.frames or round(duration * float(rate))
        return VideoInfo(
            width=ctx.width,
            height=ctx.height,
            fps=float(rate),
            rate=Fraction(rate.numerator, rate.denominator),
            time_base=Fraction(time_base.numerator, time_base.denominator),
            frames_estimate=max(int(frames), 1),
            duration=duration,
            has_audio=bool(container.streams.audio),
            full_range=ctx.color_range == 2,
            pix_fmt=work_format(ctx.width, ctx.height),
        )


def _to_planes(frame: VideoFrame, pix_fmt: str) -> Planes:
    if frame.format.name != pix_fmt:
        frame = frame.reformat(format=pix_fmt)
    arrays = []
    for plane in frame.planes[:3]:
        buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        # A copy: decoded buffers may be the decoder's references, never to be written to.
        arrays.append(buf[:, : plane.width].copy())
    return Planes(arrays[0], arrays[1], arrays[2], frame.pts, int(frame.rotation or 0))


def read_frames(path: Path, info: VideoInfo) -> Iterator[Planes]:
    """Decode the first video stream frame by frame (the codec's threads do the work)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield _to_planes(frame, info.pix_fmt)


def _from_planes(planes: Planes, info: VideoInfo) -> VideoFrame:
    frame = VideoFrame(info.width, info.height, info.pix_fmt)
    for plane, arr in zip(frame.planes, (planes.y, planes.u, planes.v), strict=True):
        buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        buf[:, : plane.width] = arr
    frame.pts = planes.pts
    frame.time_base = info.time_base
    return frame


class Remuxer:
    """Demuxes the input once: video frames out to the caller, audio packets straight to the
    output; the caller's processed frames are encoded with libx264 into the same output."""

    def __init__(self, src: Path, dst: Path, info: VideoInfo, rotation: int) -> None:
        self.info = info
        self._in = av.open(str(src))
        self._out = av.open(str(dst), "w", format="mp4")
        vin = self._in.streams.video[0]
        vin.thread_type = "AUTO"
        self._vin = vin
        self._audio_in = list(self._in.streams.audio)
        self._audio_out = {s.index: self._out.add_stream_from_template(s) for s in self._audio_in}
        vout = self._out.add_stream("libx264", rate=info.rate)
        vout.width = info.width
        vout.height = info.height
        vout.pix_fmt = info.pix_fmt
        vout.time_base = info.time_base
        vout.codec_context.time_base = info.time_base
        vout.thread_type = "AUTO"
        vout.options = {"crf": str(CRF), "preset": PRESET, "x264-params": X264_PARAMS}
        if vin.codec_context.color_range:
            vout.codec_context.color_range = vin.codec_context.color_range
        if rotation:
            vout.set_display_rotation(rotation)
        self._vout = vout
        self._last_pts: int | None = None

    def frames(self) -> Iterator[Planes]:
        for packet in self._in.demux(self._vin, *self._audio_in):
            if packet.stream.type == "audio":
                if packet.dts is None:  # the demuxer's flush packet carries nothing
                    continue
                packet.stream = self._audio_out[packet.stream.index]
                self._out.mux(packet)
                continue
            for frame in packet.decode():
                if isinstance(frame, VideoFrame):
                    yield _to_planes(frame, self.info.pix_fmt)

    def write(self, planes: Planes) -> None:
        pts = planes.pts
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            # Streams without timestamps (or with repeats) get the next tick: x264 needs rising pts.
            pts = 0 if self._last_pts is None else self._last_pts + 1
            planes.pts = pts
        self._last_pts = pts
        for packet in self._vout.encode(_from_planes(planes, self.info)):
            self._out.mux(packet)

    def finish(self) -> None:
        for packet in self._vout.encode(None):
            self._out.mux(packet)
        self.close()

    def close(self) -> None:
        self._out.close()
        self._in.close()
