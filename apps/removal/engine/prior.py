"""The shipped matte prior of a profile, scaled to a video's size.

Why this exists: detection correlates frames with the prior, and the matte falls back on it
where a video has too little motion to estimate the matte by itself.
"""

import json
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .arrays import F32, f32
from .profile import MarkProfile, Place


@dataclass(frozen=True)
class ScaledPrior:
    alpha: F32  # opacity at the video's scale, box top-left at (0, 0)
    scale: float  # video px per reference px
    places: tuple[Place, ...]  # in video px
    username_box: tuple[float, float, float, float]  # in video px, relative to the box
    search_radius: float  # in video px

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.alpha.shape
        return w, h


@lru_cache(maxsize=8)
def load_prior(profile: MarkProfile, width: int, height: int) -> ScaledPrior:
    meta = json.loads(profile.prior_json.read_text())
    if min(meta["reference_size"]) != profile.reference_short_side:
        raise ValueError(f"{profile.prior_json} was measured on another reference size")
    raw = np.asarray(cv2.imread(str(profile.prior_png), cv2.IMREAD_UNCHANGED), np.float32) / 65535.0
    scale = min(width, height) / profile.reference_short_side
    h, w = raw.shape
    size = (max(4, round(w * scale)), max(4, round(h * scale)))
    alpha = raw if scale == 1.0 else f32(cv2.resize(raw, size, interpolation=cv2.INTER_AREA))
    places = profile.portrait_places if width < height else profile.landscape_places
    scaled = tuple(Place(p.name, p.x * scale, p.y * scale) for p in places)
    ux, uy, uw, uh = profile.username_box
    return ScaledPrior(
        alpha=np.ascontiguousarray(alpha, dtype=np.float32),
        scale=scale,
        places=scaled,
        username_box=(ux * scale, uy * scale, uw * scale, uh * scale),
        search_radius=profile.search_radius * scale,
    )
