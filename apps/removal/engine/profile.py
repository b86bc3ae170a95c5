"""One `MarkProfile` per generator's mark: everything the engine knows about a mark as data.

Why this exists: the engine's code must not know Sora. A different generator's overlay is a new
profile (its prior file, where it sits, its opacity range, the geometry of any per-user text
line), not new code. Coordinates are in a reference frame whose short side is
`reference_short_side` pixels; the engine scales them to each video's size.
"""

from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class Place:
    """A spot where the mark appears: its box's top-left in the reference frame."""

    name: str
    x: float
    y: float


@dataclass(frozen=True)
class MarkProfile:
    name: str
    # 16-bit PNG of opacity (65535 = opaque) and a JSON with its origin in the reference frame.
    prior_png: Path
    prior_json: Path
    reference_short_side: int
    # Where the mark's box can sit, for portrait (w < h) and landscape (w >= h) videos.
    portrait_places: tuple[Place, ...]
    landscape_places: tuple[Place, ...]
    # How far (reference px) the mark may sit from a nominal place.
    search_radius: float
    # The per-user text line under the logo, relative to the mark box's top-left: x, y, w, h.
    # Its content is never known in advance: its matte is estimated from each video.
    username_box: tuple[float, float, float, float]
    # The overlay's colour (8-bit RGB level, neutral); measured 253-255 on real frames.
    white: float
    # Plausible opacity of the mark's body; a fit outside this is not this mark.
    alpha_range: tuple[float, float]
    # Above this opacity the picture under the mark is too faint to recover: it is inpainted.
    recover_max_alpha: float
    # Normalised correlation with the prior that counts as "the mark is here" in a frame.
    detect_threshold: float
    # A run of detections shorter than this (seconds) is not a mark (no false marks on clips).
    min_segment_seconds: float


SORA2 = MarkProfile(
    name="sora2",
    prior_png=ASSETS / "sora2_prior.png",
    prior_json=ASSETS / "sora2_prior.json",
    reference_short_side=704,
    # Measured bottom-left at (33, 1113) on a real 704x1280 frame; the others mirror its margins
    # (the search radius absorbs the uncertainty).
    portrait_places=(
        Place("top-left", 33.0, 80.0),
        Place("middle-right", 515.0, 612.0),
        Place("bottom-left", 33.0, 1113.0),
    ),
    landscape_places=(
        Place("top-left", 33.0, 48.0),
        Place("middle-right", 1091.0, 324.0),
        Place("bottom-left", 33.0, 577.0),
    ),
    search_radius=48.0,
    username_box=(-6.0, 50.0, 220.0, 34.0),
    white=254.0,
    alpha_range=(0.5, 0.9),
    recover_max_alpha=0.93,
    detect_threshold=0.27,
    min_segment_seconds=0.4,
)
