"""Finding the mark in a frame: which place, where to a fraction of a pixel, how surely.

Why this exists: the mark jumps between a few places, and the matte must be laid exactly where
the mark is (one pixel off costs about 5 dB). Each frame's luma is correlated with the prior
only inside the search windows around the profile's places (a full-frame search costs ~0.3 s a
frame): first at half resolution over the whole window, then at full resolution around the best
spot, with a parabola through the correlation peak for the sub-pixel position. Both sides are
high-passed first (minus a Gaussian blur of 6 reference px): the picture's broad shading
otherwise dominates the correlation, and a white mark on a bright sky scores like noise.
Measured on the quality corpus: marked frames score >= 0.32 at their place, everything else
<= 0.20.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from .arrays import F32, U8, f32
from .prior import ScaledPrior

# Blur (reference px) subtracted from both the frame and the prior before correlating.
HIGH_PASS_SIGMA = 6.0


@dataclass(frozen=True)
class Detection:
    place: int
    x: float  # top-left of the mark's box in the frame, sub-pixel
    y: float
    score: float


def _peak_offset(left: float, mid: float, right: float) -> float:
    """Vertex of the parabola through three samples around a maximum, in (-0.5, 0.5)."""
    den = left - 2.0 * mid + right
    if den >= 0.0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / den, -0.5, 0.5))


def _ncc(window: F32, template: F32) -> F32:
    result = f32(cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED))
    # Flat windows have no variance to normalise by.
    return f32(np.nan_to_num(result, nan=0.0, posinf=0.0, neginf=0.0))


def _half(image: F32) -> F32:
    h, w = image.shape
    return f32(cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA))


class Detector:
    def __init__(self, prior: ScaledPrior, width: int, height: int, threshold: float) -> None:
        self.sigma = HIGH_PASS_SIGMA * prior.scale
        # The template keeps a zero border as wide as the blur, so its high-pass is complete.
        self.pad = max(2, round(2 * self.sigma))
        padded = np.pad(prior.alpha * 255.0, self.pad).astype(np.float32)
        self.template = self._high_pass(padded)
        self.half_template = _half(self.template)
        self.threshold = threshold
        self.width, self.height = width, height
        tw, th = prior.size
        r = prior.search_radius + self.pad
        self.windows: list[tuple[int, int, int, int]] = []
        for place in prior.places:
            x0 = int(max(0, np.floor(place.x - r)))
            y0 = int(max(0, np.floor(place.y - r)))
            x1 = int(min(width, np.ceil(place.x + tw + r)))
            y1 = int(min(height, np.ceil(place.y + th + r)))
            self.windows.append((x0, y0, x1, y1))

    def _high_pass(self, image: F32) -> F32:
        return f32(image - cv2.GaussianBlur(image, (0, 0), self.sigma))

    def detect(self, luma: U8) -> tuple[Detection | None, list[float]]:
        """The best-scoring place if it clears the threshold, else None; and every place's
        coarse score (used to tell, at a jump, which place a faint frame belongs to)."""
        best: Detection | None = None
        th, tw = self.template.shape
        scores = [0.0] * len(self.windows)
        for index, (x0, y0, x1, y1) in enumerate(self.windows):
            if x1 - x0 < tw + 2 or y1 - y0 < th + 2:
                continue
            window = self._high_pass(luma[y0:y1, x0:x1].astype(np.float32))
            coarse = _ncc(_half(window), self.half_template)
            _, score, _, (cx, cy) = cv2.minMaxLoc(coarse)
            scores[index] = float(score)
            if score < self.threshold * 0.7:
                continue
            found = self._refine(window, 2 * cx, 2 * cy, x0, y0, index)
            if found is not None and (best is None or found.score > best.score):
                best = found
        if best is None or best.score < self.threshold:
            return None, scores
        return best, scores

    def _refine(
        self, window: F32, gx: int, gy: int, ox: int, oy: int, place: int
    ) -> Detection | None:
        th, tw = self.template.shape
        pad = 3
        x0, y0 = max(0, gx - pad), max(0, gy - pad)
        x1 = min(window.shape[1], gx + tw + pad)
        y1 = min(window.shape[0], gy + th + pad)
        if x1 - x0 < tw + 2 or y1 - y0 < th + 2:
            return None
        fine = _ncc(window[y0:y1, x0:x1], self.template)
        _, score, _, (bx, by) = cv2.minMaxLoc(fine)
        dx = dy = 0.0
        if 0 < bx < fine.shape[1] - 1:
            dx = _peak_offset(fine[by, bx - 1], fine[by, bx], fine[by, bx + 1])
        if 0 < by < fine.shape[0] - 1:
            dy = _peak_offset(fine[by - 1, bx], fine[by, bx], fine[by + 1, bx])
        # The template's top-left sits `pad` before the mark's box.
        x = ox + x0 + bx + dx + self.pad
        y = oy + y0 + by + dy + self.pad
        return Detection(place, x, y, float(score))
