"""Integrating a gradient field: the Poisson equation on a rectangle, zero on its border.

Why this exists: the matte is estimated as gradients (robust medians over frames) and must be
integrated back into values. With the border fixed at zero (no mark around the mark's region)
the discrete sine transform diagonalises the 5-point Laplacian, so one solve costs two
transforms; NumPy's FFT does them (no SciPy at run time).
"""

import numpy as np

from .arrays import F32


def _dst1(x: np.ndarray, axis: int) -> np.ndarray:
    """Type-I discrete sine transform along `axis` via an odd extension and a real FFT."""
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    ext = np.zeros((*x.shape[:-1], 2 * (n + 1)), dtype=np.float64)
    ext[..., 1 : n + 1] = x
    ext[..., n + 2 :] = -x[..., ::-1]
    out = -np.fft.rfft(ext, axis=-1).imag[..., 1 : n + 1] / 2.0
    return np.moveaxis(out, -1, axis)


def integrate(gx: F32, gy: F32) -> F32:
    """u (h, w) whose forward differences best match gx (h, w-1) and gy (h-1, w), u = 0 outside.

    Solves lap(u) = div(g) with the zero border just outside the array.
    """
    h, w = gy.shape[0] + 1, gx.shape[1] + 1
    div = np.zeros((h, w), np.float64)
    div[:, :-1] += gx
    div[:, 1:] -= gx
    div[:-1, :] += gy
    div[1:, :] -= gy
    # The fixed zero border also takes the gradient into the first and last pixels' neighbours:
    # those differences are unknown here, so they count as zero (no mark at the border).
    spec = _dst1(_dst1(div, 0), 1)
    ky = 2.0 * np.cos(np.pi * np.arange(1, h + 1) / (h + 1)) - 2.0
    kx = 2.0 * np.cos(np.pi * np.arange(1, w + 1) / (w + 1)) - 2.0
    spec /= ky[:, None] + kx[None, :]
    u = _dst1(_dst1(spec, 0), 1) * (2.0 / (h + 1)) * (2.0 / (w + 1))
    return u.astype(np.float32)
