"""What `remove_watermark` returns: what was found and done, for the caller to show or store."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentReport:
    place: str  # the profile's name for the spot ("bottom-left", ...)
    x: float  # top-left of the mark's box, display pixels, sub-pixel
    y: float
    start_frame: int
    stop_frame: int  # one past the last frame
    start_seconds: float
    stop_seconds: float
    detected_frames: int  # frames where the detector saw the mark itself
    matte: str  # "video" (estimated from this video) or "prior" (the shipped prior, fitted)
    opacity: float  # median opacity of the mark's body in this segment


@dataclass(frozen=True)
class Report:
    profile: str
    frames: int
    marked_frames: int
    segments: tuple[SegmentReport, ...]
    seconds: float  # wall time of the whole removal
    had_audio: bool
    width: int
    height: int
    fps: float
    duration: float
    rotation: int
    pix_fmt: str
    crf: int
    preset: str
