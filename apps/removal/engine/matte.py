"""Estimating the mark's matte (opacity per pixel) from the video itself.

Why this exists: the shipped prior is close, not exact, and the per-user `@username` line has no
prior at all; a matte off by a pixel or a few percent leaves a visible ghost. Within one place
the overlay never changes while the picture under it does (Dekel et al., CVPR 2017). For a white
overlay of colour W and opacity a, observed = a W + (1 - a) I, so

    log(W - observed) = log(1 - a) + log(W - I).

Over many frames the second term's gradient is the picture's, which varies and has a median near
zero at each pixel, while the first term's gradient stays put: the median over frames of the
observed log-gradient is the gradient of log(1 - a). Integrating it (Poisson, zero outside the
region) gives the matte, text line included. A still picture gives no such evidence: when the
frames barely change, the prior (registered at the detected sub-pixel spot, its gain fitted)
is used instead.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from .arrays import F32, Bool, f32
from .poisson import integrate

# Observed values closer than this to the overlay's colour carry no usable log-gradient.
MIN_DEPTH = 12.0
# Opacities below this are noise of the estimate, not mark.
MIN_ALPHA = 0.02
# A pixel "changes" when its luma's spread over the samples exceeds this; a region where fewer
# than STILL_FRACTION of pixels change is a still picture.
CHANGE_STD = 6.0
STILL_FRACTION = 0.05
# log(1 - a) below this (a > 0.18) in the username band is a stroke of its text.
STROKE_LOG = -0.2


@dataclass(frozen=True)
class Matte:
    alpha: F32  # opacity over the region
    white: float  # the overlay's colour in the luma plane
    source: str  # "video" or "prior"


def place_prior(prior: F32, shape: tuple[int, int], dx: float, dy: float) -> F32:
    """The prior with its top-left at sub-pixel (dx, dy) of an array of `shape`."""
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float32)
    return f32(
        cv2.warpAffine(prior, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderValue=0.0)
    )


def _masked_median(values: np.ndarray, valid: np.ndarray, min_count: int) -> tuple[F32, F32]:
    """Median over axis 0 of the valid entries, and where too few were valid."""
    data = np.where(valid, values, np.nan)
    count = valid.sum(axis=0)
    enough = count >= min_count
    med = np.zeros(values.shape[1:], np.float32)
    if enough.any():
        med[enough] = np.nanmedian(data[:, enough], axis=0)
    return med, enough.astype(np.float32)


def _smooth_fill(values: F32, known: Bool, sigma: float) -> F32:
    """Normalised Gaussian convolution: `values` where known, smoothly interpolated elsewhere."""
    k = known.astype(np.float32)
    num = cv2.GaussianBlur(values * k, (0, 0), sigma)
    den = cv2.GaussianBlur(k, (0, 0), sigma)
    wide = cv2.GaussianBlur(values * k, (0, 0), 4 * sigma) / np.maximum(
        cv2.GaussianBlur(k, (0, 0), 4 * sigma), 1e-6
    )
    return np.where(den > 0.05, num / np.maximum(den, 1e-6), wide).astype(np.float32)


def matte_from_video(
    samples: F32, white: float, support: Bool, text_band: Bool, scale: float
) -> F32:
    """Opacity from the median log-gradients of `samples` (K, h, w) of luma under the mark.

    Slow pans leave a smooth trace of the picture in the medians. Where the mark cannot be
    (outside the prior's dilated support and the username line's strokes) the integrated field
    must be zero; what it holds there is that trace, interpolated under the mark and removed.
    """
    depth = white - samples
    valid = depth > MIN_DEPTH
    logd = np.log(np.maximum(depth, 1.0))
    min_count = max(3, samples.shape[0] // 4)
    gx, _ = _masked_median(
        logd[:, :, 1:] - logd[:, :, :-1], valid[:, :, 1:] & valid[:, :, :-1], min_count
    )
    gy, _ = _masked_median(
        logd[:, 1:, :] - logd[:, :-1, :], valid[:, 1:, :] & valid[:, :-1, :], min_count
    )
    log_b = integrate(gx, gy)
    sigma = max(1.5, 5.0 * scale)
    bias = _smooth_fill(log_b, ~support, sigma)
    # The username line: strokes standing out of the local trace inside its band.
    strokes = text_band & (log_b - bias < STROKE_LOG)
    strokes = cv2.dilate(strokes.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    mark = support | strokes
    bias = _smooth_fill(log_b, ~mark, sigma)
    log_b = np.where(mark, log_b - bias, 0.0)
    alpha = 1.0 - np.exp(np.minimum(log_b, 0.0))
    alpha[alpha < MIN_ALPHA] = 0.0
    return alpha.astype(np.float32)


def is_still(samples: F32, support: Bool) -> bool:
    """Textured and unchanging around the mark: its gradients would be taken for the mark's.

    Flat surroundings are fine (no picture gradient to confuse), so only textured pixels that
    keep still count against the video's evidence."""
    around = ~support
    mean = samples.mean(axis=0)
    gx = np.abs(np.diff(mean, axis=1, append=mean[:, -1:]))
    gy = np.abs(np.diff(mean, axis=0, append=mean[-1:, :]))
    textured = around & (gx + gy > 8.0)
    if textured.sum() < 0.1 * around.sum():
        return False
    moving = samples.std(axis=0) > CHANGE_STD
    return float(moving[textured].mean()) < STILL_FRACTION


def fit_prior(prior: F32, alpha: F32, alpha_range: tuple[float, float], body: float) -> F32:
    """The prior with the gain that best explains `alpha`, kept to the profile's range."""
    support = prior > 0.1
    denom = float((prior[support] ** 2).sum())
    gain = float((prior[support] * alpha[support]).sum()) / denom if denom > 0 else 1.0
    lo, hi = alpha_range
    gain = float(np.clip(gain, lo / body, hi / body))
    return np.clip(prior * gain, 0.0, 0.99).astype(np.float32)


def estimate_matte(
    samples: F32,
    placed_prior: F32,
    text_band: Bool,
    white: float,
    alpha_range: tuple[float, float],
    body: float,
    scale: float,
) -> Matte:
    """The matte of one place: from the video when it moves enough, else the fitted prior."""
    grow = max(1, round(3 * scale))
    support = (
        cv2.dilate(
            (placed_prior > 0.02).astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
        )
        > 0
    )
    if samples.shape[0] >= 8 and not is_still(samples, support):
        return Matte(matte_from_video(samples, white, support, text_band, scale), white, "video")
    if samples.shape[0] >= 3:
        alpha = matte_from_video(samples, white, support, text_band, scale)
    else:
        alpha = placed_prior
    return Matte(fit_prior(placed_prior, alpha, alpha_range, body), white, "prior")
