"""Unmark's own watermark remover: no Django, no network, no model weights.

    from apps.removal.engine import remove_watermark, NoMarkFound, Cancelled, SORA2
    report = remove_watermark(src, dst, profile=SORA2, on_progress=..., should_stop=...)

See README.md beside this file for how it works and what it reaches.
"""

from .errors import Cancelled, EngineError, NoMarkFound, UnsupportedVideo
from .pipeline import remove_watermark
from .profile import SORA2, MarkProfile, Place
from .report import Report, SegmentReport

__all__ = [
    "SORA2",
    "Cancelled",
    "EngineError",
    "MarkProfile",
    "NoMarkFound",
    "Place",
    "Report",
    "SegmentReport",
    "UnsupportedVideo",
    "remove_watermark",
]
