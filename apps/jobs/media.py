"""Judging a video by its content (PyAV), and poster frames.

A file's name and declared type say nothing: only what FFmpeg finds inside counts. Probing
reads the container, demuxes every packet (cheap: nothing is decoded) to catch files cut
off part-way, and decodes one frame, which becomes the poster. Every refusal is a
`MediaRefused` whose message can be shown to the person as it is.
"""

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import av
from django.conf import settings

from apps.refusals import Refused

POSTER_MAX_SIDE = 640
POSTER_QUALITY = 80
# Decoders of still pictures: a PNG or JPEG opened by FFmpeg is a one-frame "video".
IMAGE_CODECS = frozenset({"png", "mjpeg", "bmp", "gif", "webp", "tiff", "jpeg2000", "apng"})
# A video that demuxes to fewer packets than its index promises was cut off part-way.
COMPLETE_SHARE = 0.98
# Top-level boxes an MP4 / QuickTime file has after its `ftyp` (ISO/IEC 14496-12, QuickTime).
ISO_TOP_LEVEL_BOXES = frozenset(
    {b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pdin", b"moof", b"mfra", b"meta",
     b"styp", b"sidx", b"ssix", b"prft", b"emsg", b"pnot"}
)  # fmt: skip


class MediaRefused(Refused):
    """The file cannot be used; the message says why in plain words."""

    code, status, title = "not-a-usable-video", 400, "Not a usable video"


@dataclass(frozen=True)
class MediaInfo:
    container: str
    codec: str
    width: int
    height: int
    fps: float
    seconds: float
    has_audio: bool

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Probed:
    info: MediaInfo
    poster: bytes  # JPEG


def probe_video(path: Path) -> Probed:
    """Checks that `path` holds a complete, playable video within the caps.

    Raises `MediaRefused` for anything else: empty, not a video, cut off, sound only, a
    still picture, too long or too large a picture.
    """
    size = path.stat().st_size
    if size == 0:
        raise MediaRefused("This file is empty (0 bytes).")
    try:
        container = av.open(str(path))
    except av.FFmpegError:
        if _is_cut_off_iso_media(path):
            raise MediaRefused(
                "This video is incomplete: the file was cut off before its end. "
                "Export or download it again and upload the whole file."
            ) from None
        raise MediaRefused("This is not a video file we can read.") from None
    with container:
        if not container.streams.video:
            if container.streams.audio:
                raise MediaRefused("This file has only sound, no picture.")
            raise MediaRefused("This is not a video file we can read.")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if codec in IMAGE_CODECS or container.format.name.endswith("_pipe"):
            raise MediaRefused("This is a still picture, not a video.")
        info = MediaInfo(
            container=container.format.name.split(",")[0],
            codec=codec,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=round(float(stream.average_rate or stream.guessed_rate or 0), 3),
            seconds=_seconds(container, stream),
            has_audio=bool(container.streams.audio),
        )
        _check_caps(info)
        _check_complete(container, stream)
        container.seek(0)
        return Probed(info=info, poster=_poster_from(container, stream))


def poster_jpeg(path: Path) -> bytes | None:
    """A poster frame for a video we already trust (a result); None if none can be decoded."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            return _poster_from(container, container.streams.video[0])
    except (av.FFmpegError, MediaRefused):
        return None


def has_sound(path: Path) -> bool:
    """Whether the video at `path` carries sound: an audio track with at least one packet in
    it. PyAV reads the file from disk as it goes (only up to the first audio packet), so a
    large result is never held in memory."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return False
            return any(packet.size for packet in container.demux(container.streams.audio[0]))
    except av.FFmpegError:
        return False


def _is_cut_off_iso_media(path: Path) -> bool:
    """Whether an unreadable file is the start of a real MP4: an `ftyp` box followed by
    nothing or by another MP4 box. Anything else after a `ftyp` (a web page saved under a
    video's name behind a copied header) is not a video at all, not an incomplete one."""
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return False
        ftyp_size = int.from_bytes(head[:4], "big")
        if not 8 <= ftyp_size <= 4096:
            return False
        handle.seek(ftyp_size)
        following = handle.read(8)
    return len(following) < 8 or following[4:8] in ISO_TOP_LEVEL_BOXES


def _seconds(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base), 3)
    if container.duration is not None:
        return round(container.duration / av.time_base, 3)
    return 0.0


def _check_caps(info: MediaInfo) -> None:
    if info.width <= 0 or info.height <= 0:
        raise MediaRefused("This video has no picture size we can read.")
    if info.seconds <= 0:
        raise MediaRefused("This video has no length we can read.")
    max_seconds = settings.UPLOAD_MAX_SECONDS
    if info.seconds > max_seconds:
        raise MediaRefused(
            f"This video is {info.seconds:.0f} seconds long; videos up to {max_seconds} "
            "seconds are accepted."
        )
    max_side = settings.UPLOAD_MAX_SIDE
    if max(info.width, info.height) > max_side:
        raise MediaRefused(
            f"This video is {info.width} by {info.height} pixels; videos up to {max_side} pixels "
            "on their longest side are accepted."
        )


def _check_complete(container: av.container.InputContainer, stream: av.VideoStream) -> None:
    """Demuxes every packet: a file cut off part-way has fewer than its index promises."""
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
    except av.FFmpegError:
        raise MediaRefused(
            "This video is damaged: part of it cannot be read. Export it again and upload that."
        ) from None
    if packets == 0 or (stream.frames and packets < stream.frames * COMPLETE_SHARE):
        raise MediaRefused(
            "This video is incomplete: the file was cut off before its end. "
            "Export or download it again and upload the whole file."
        )
    if packets == 1:
        raise MediaRefused("This is a still picture, not a video.")


def _poster_from(container: av.container.InputContainer, stream: av.VideoStream) -> bytes:
    try:
        for frame in container.decode(stream):
            image = frame.to_image()
            break
        else:
            raise MediaRefused("No picture in this video can be decoded.")
    except av.FFmpegError:
        raise MediaRefused("No picture in this video can be decoded.") from None
    image.thumbnail((POSTER_MAX_SIDE, POSTER_MAX_SIDE))
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=POSTER_QUALITY)
    return out.getvalue()
