"""Restoring the picture under the mark, fused over neighbouring frames along motion.

Why this exists: inverting the blend, original = (observed - a W) / (1 - a), recovers the
pixels rather than guessing them, but multiplies the codec's noise by 1 / (1 - a) (about 3.7 at
a = 0.73). Each frame's recovered estimate carries its own noise, and neighbouring frames saw
the same scene point, unmarked or under another part of the mark. So every frame's estimate is
fused with its neighbours' estimates, warped along optical flow (computed between recovered
pictures, so the static mark does not pin the flow), each weighted by its inverse noise
variance (1 - a)^2 and by how well it agrees (occlusions and flow errors drop out). What no
frame shows (opacity near 1) is inpainted spatially, last. Only the mark's pixels and a RING
of pixels around them (where the source's codec smeared the mark's edges) are written.
"""

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from .arrays import F32, U8, Bool, Idx, f32
from .media import Planes

# Frames on each side fused with the current one (flow chained frame to frame), and farther
# frames reached by one direct flow each (where a pan has uncovered what the mark hides).
RADIUS = 5
FAR = (8, 16, 24)
# Frames the window must hold on each side of the one being restored.
REACH = max(RADIUS, *FAR)
# Pixels of motion the flow may bring in from around the mark's region.
FLOW_MARGIN = 48
# Noise (luma levels) of an unmarked sample; residuals are judged against it. (16 gained
# 0.16-0.21 dB on coffee and white sky but lost 0.39 on the fast pan, where flows fail.)
SIGMA = 10.0
CHROMA_WHITE = 128.0
# Bilateral range (x the excess noise), spatial sigma (px) and diameter of the final smoothing.
DENOISE_RANGE = 14.0
DENOISE_SPACE = 7.0
DENOISE_DIAMETER = 9
# Row length of the support's pixel lists: cv2.remap takes maps under 32767 px a side, so the
# lists are laid out as (rows, SUPPORT_ROW) images, padded by repeating their last pixel.
SUPPORT_ROW = 512
# Pixels around the mark (luma px) also written with their fused value. The source's encoder
# spread the mark's sharp edges over the transform blocks holding them (ringing, up to 7 px
# away in an 8x8 block): there the picture is unmarked but damaged, frame after frame
# differently, and fusing it along motion averages the damage out (rocket +0.2 dB in the box,
# coffee +0.5; 8 px did worse, 6 px no better). Within the smoothing's reach: no extra support.
RING = 4


@dataclass(frozen=True)
class Support:
    """The pixels of a layer's region whose fused value the result reads: the mark's pixels and
    what the final smoothing (and chroma's 2x2 blocks) reads around them. Fusing only these
    (about a third of the region's box) gives the same result for the mark's pixels.
    `ys, xs` (luma) and `cys, cxs` (chroma) are (rows, SUPPORT_ROW) region coordinates; `quad`
    holds, for each chroma pixel of the support (laid out as `cys`), the four indices of its 2x2
    luma block in the flattened luma list."""

    ys: Idx
    xs: Idx
    cys: Idx
    cxs: Idx
    quad: tuple[Idx, Idx, Idx, Idx] | None


@dataclass
class Layer:
    """One segment's matte, laid in frame coordinates."""

    x0: int
    y0: int
    alpha: F32  # luma opacity, region starting at (x0, y0)
    alpha_c: F32  # chroma opacity, region starting at (x0 >> shift, y0 >> shift)
    white: float
    shift: int
    max_alpha: float
    support: Support
    written: Bool  # luma pixels of the region the result writes: the mark and its ring
    written_c: Bool  # chroma pixels likewise
    context: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))

    @property
    def x1(self) -> int:
        return self.x0 + self.alpha.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.alpha.shape[0]


def make_layer(
    x0: int, y0: int, alpha: F32, white: float, shift: int, max_alpha: float, size: tuple[int, int]
) -> Layer:
    """A layer whose region and context are aligned to the chroma grid."""
    if shift:
        # Pad to even origin and size so chroma samples cover whole 2x2 blocks.
        px, py = x0 & 1, y0 & 1
        h, w = alpha.shape
        padded = np.zeros((h + py + ((h + py) & 1), w + px + ((w + px) & 1)), np.float32)
        padded[py : py + h, px : px + w] = alpha
        alpha, x0, y0 = padded, x0 - px, y0 - py
        h, w = alpha.shape
        alpha_c = f32(cv2.resize(alpha, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    else:
        alpha_c = alpha
    width, height = size
    m = FLOW_MARGIN
    cx0, cy0 = max(0, x0 - m), max(0, y0 - m)
    cx1 = min(width, x0 + alpha.shape[1] + m)
    cy1 = min(height, y0 + alpha.shape[0] + m)
    if shift:
        cx0, cy0 = cx0 & ~1, cy0 & ~1
        cx1, cy1 = cx1 - (cx1 & 1), cy1 - (cy1 & 1)
    written = _grown(alpha > 0.0, RING)
    written_c = _grown(alpha_c > 0.0, (RING + shift) >> shift)
    support = _support(alpha, alpha_c, shift)
    return Layer(
        x0,
        y0,
        alpha,
        alpha_c,
        white,
        shift,
        max_alpha,
        support,
        written,
        written_c,
        (cx0, cy0, cx1, cy1),
    )


def _grown(mask: Bool, radius: int) -> Bool:
    """`mask` with every pixel within `radius` (a square) of it."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def _rows(mask: Bool) -> tuple[Idx, Idx]:
    """`mask`'s pixel coordinates as (rows, SUPPORT_ROW) arrays, padded with the last pixel
    (written twice with the same value, so the padding is harmless)."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        # A matte with no opacity left (a degenerate estimate) writes nothing, but the lists
        # need a pixel to pad with.
        ys, xs = np.zeros(1, np.intp), np.zeros(1, np.intp)
    pad = -len(ys) % SUPPORT_ROW
    ys, xs = np.pad(ys, (0, pad), mode="edge"), np.pad(xs, (0, pad), mode="edge")
    return ys.reshape(-1, SUPPORT_ROW), xs.reshape(-1, SUPPORT_ROW)


def _support(alpha: F32, alpha_c: F32, shift: int) -> Support:
    # The smoothing reads DENOISE_DIAMETER // 2 px around the mark; the ring is written.
    luma = _grown(alpha > 0.0, max(DENOISE_DIAMETER // 2, RING))
    if not shift:
        ys, xs = _rows(luma)
        return Support(ys, xs, ys, xs, None)
    chroma = _grown(alpha_c > 0.0, max(DENOISE_DIAMETER // 2, (RING + shift) >> shift))
    # Every chroma pixel's 2x2 luma block is fused too: chroma's flow and agreement are their
    # block's means.
    luma |= np.repeat(np.repeat(chroma, 2, axis=0), 2, axis=1)
    ys, xs = _rows(luma)
    cys, cxs = _rows(chroma)
    index = np.full(luma.shape, -1, np.intp)
    index[np.nonzero(luma)] = np.arange(int(luma.sum()))
    by, bx = 2 * cys, 2 * cxs
    quad = (index[by, bx], index[by, bx + 1], index[by + 1, bx], index[by + 1, bx + 1])
    return Support(ys, xs, cys, cxs, quad)


@dataclass
class _Estimate:
    """One frame's recovered planes over a context, with inverse-variance weights."""

    yw: F32  # (h, w, 2): recovered luma, its weight
    uvw: F32  # (hc, wc, 3): recovered U, V, their weight
    y8: U8  # recovered luma as 8-bit, for optical flow


def _alpha_in(layer: Layer | None, rect: tuple[int, int, int, int], shift: int) -> F32:
    """`layer`'s luma (shift=0) or chroma opacity over `rect` (given in that plane's pixels)."""
    x0, y0, x1, y1 = rect
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    if layer is None:
        return out
    src = layer.alpha if shift == 0 else layer.alpha_c
    lx0, ly0 = layer.x0 >> shift, layer.y0 >> shift
    ox0, oy0 = max(x0, lx0), max(y0, ly0)
    ox1, oy1 = min(x1, lx0 + src.shape[1]), min(y1, ly0 + src.shape[0])
    if ox0 < ox1 and oy0 < oy1:
        out[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] = src[
            oy0 - ly0 : oy1 - ly0, ox0 - lx0 : ox1 - lx0
        ]
    return out


def _invert(obs: U8, alpha: F32, white: float, max_alpha: float) -> tuple[F32, F32]:
    o = obs.astype(np.float32)
    b = 1.0 - alpha
    rec = np.where(alpha > 0.0, white - (white - o) / np.maximum(b, 0.05), o)
    weight = np.where(alpha <= max_alpha, b * b, 0.0).astype(np.float32)
    return rec.astype(np.float32), weight


class Recoverer:
    """Per-frame estimates and consecutive flows are made by `prepare` (one thread, in frame
    order); `restore` only reads them, so several frames can be restored at once."""

    def __init__(self, shift: int) -> None:
        self.shift = shift
        # OpenCV's DIS objects keep state between calls: one per thread.
        self._local = threading.local()
        self._estimates: dict[tuple[int, int], _Estimate] = {}
        # Flow between consecutive frames over a target's context: (from, to, target) -> flow.
        self._flows: dict[tuple[int, int, int], F32] = {}
        self._linked = 0  # frames up to this one have their flows to the previous one

    def forget_written(self, done: int) -> None:
        """Drop what no frame after `done` can use: estimates more than REACH frames back,
        consecutive flows more than RADIUS back (only the chain uses them)."""
        for key in [k for k in self._estimates if k[0] <= done - REACH]:
            del self._estimates[key]
        for fkey in [k for k in self._flows if min(k[0], k[1]) <= done - RADIUS]:
            del self._flows[fkey]

    def _estimate(
        self, index: int, planes: Planes, layer: Layer | None, target: Layer, target_id: int
    ) -> _Estimate:
        key = (index, target_id)
        hit = self._estimates.get(key)
        if hit is not None:
            return hit
        cx0, cy0, cx1, cy1 = target.context
        s = self.shift
        crect = (cx0 >> s, cy0 >> s, cx1 >> s, cy1 >> s)
        a = _alpha_in(layer, target.context, 0)
        ac = _alpha_in(layer, crect, s)
        white = layer.white if layer is not None else target.white
        y, wy = _invert(planes.y[cy0:cy1, cx0:cx1], a, white, target.max_alpha)
        u, wc = _invert(planes.u[crect[1] : crect[3], crect[0] : crect[2]], ac, CHROMA_WHITE, 2.0)
        v, _ = _invert(planes.v[crect[1] : crect[3], crect[0] : crect[2]], ac, CHROMA_WHITE, 2.0)
        # Chroma is unrecoverable wherever any of its luma pixels is.
        if s:
            holes = (wy == 0.0).astype(np.float32)
            hc = cv2.resize(holes, (wc.shape[1], wc.shape[0]), interpolation=cv2.INTER_AREA)
            wc = np.where(hc > 0.0, 0.0, wc).astype(np.float32)
        else:
            wc = np.where(wy == 0.0, 0.0, wc).astype(np.float32)
        est = _Estimate(
            np.dstack([y, wy]), np.dstack([u, v, wc]), np.clip(y + 0.5, 0, 255).astype(np.uint8)
        )
        self._estimates[key] = est
        return est

    def _flow(self, a: U8, b: U8) -> F32:
        dis = getattr(self._local, "dis", None)
        if dis is None:
            dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
            self._local.dis = dis
        return f32(dis.calc(a, b, None))  # type: ignore[call-overload]

    def prepare(
        self, index: int, planes: Planes, layer: Layer | None, targets: dict[int, Layer]
    ) -> None:
        """Recover frame `index` over the context of every target that will need it, as soon as
        it is decoded: afterwards only the frames still to be written keep their full planes."""
        for target_id, target in targets.items():
            self._estimate(index, planes, layer, target, target_id)

    def link(self, upto: int) -> None:
        """Flows to and from the previous frame, for every frame up to `upto` and every target
        both frames were prepared for. Called in frame order, RADIUS frames ahead of the frame
        about to be restored, so the chain is ready and only 2 x RADIUS frames of flows are
        ever kept."""
        for index in range(self._linked + 1, upto + 1):
            for (k, target_id), est in list(self._estimates.items()):
                prev = self._estimates.get((index - 1, target_id))
                if k == index and prev is not None:
                    self._flows[(index - 1, index, target_id)] = self._flow(prev.y8, est.y8)
                    self._flows[(index, index - 1, target_id)] = self._flow(est.y8, prev.y8)
        self._linked = max(self._linked, upto)

    def restore(self, index: int, planes: Planes, target: Layer, target_id: int) -> Planes:
        """Frame `index` (`planes`, changed in place) with the mark of `target` removed, from the
        prepared estimates of its neighbours, fused over the target's support only.

        Flow is computed once between consecutive frames (cached across calls) and chained to
        reach the RADIUS nearest neighbours on each side (two flow computations per frame);
        the FAR frames get one direct flow each."""
        ests = {
            k: self._estimates[(k, target_id)]
            for k in (
                *range(index - RADIUS, index + RADIUS + 1),
                *(index + d for d in FAR),
                *(index - d for d in FAR),
            )
            if (k, target_id) in self._estimates
        }
        cx0, cy0, _, _ = target.context
        rx0, ry0 = target.x0 - cx0, target.y0 - cy0
        sup = target.support
        s = self.shift
        # The support's pixels in context coordinates: as indices, and as remap grids.
        ly, lx = ry0 + sup.ys, rx0 + sup.xs
        cy, cx = (ry0 >> s) + sup.cys, (rx0 >> s) + sup.cxs
        grids = (f32(lx), f32(ly), f32(cx), f32(cy))
        centre = ests[index]
        # Flat indices into the context's planes (a 1-D take is several times faster).
        lflat, cflat = ly * centre.yw.shape[1] + lx, cy * centre.uvw.shape[1] + cx
        samples = _Samples(sup)
        samples.y[0], samples.uv[0] = _gather(centre.yw, lflat), _gather(centre.uvw, cflat)
        samples.count = 1
        for direction in (-1, 1):
            # Where each of the support's pixels is in the frames along the chain.
            total: F32 | None = None
            for step in range(1, RADIUS + 1):
                a, b = index + direction * (step - 1), index + direction * step
                flow = self._flows.get((a, b, target_id))
                if b not in ests or flow is None:
                    break
                if total is None:
                    total = _gather(flow, lflat)
                else:
                    # Chain: where the accumulated flow lands in frame a, add a's flow onward.
                    onward = cv2.remap(
                        flow,
                        grids[0] + total[..., 0],
                        grids[1] + total[..., 1],
                        cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE,
                    )
                    total = f32(total + onward)
                self._warp(ests[b], total, grids, sup, samples)
        near = samples.count
        for distance in FAR:
            for k in (index - distance, index + distance):
                if k in ests:
                    flow = self._flow(centre.y8, ests[k].y8)
                    self._warp(ests[k], _gather(flow, lflat), grids, sup, samples)
        n = samples.count
        return self._fuse(planes, target, samples.y[:n], samples.uv[:n], near)

    def _warp(
        self,
        est: _Estimate,
        f: F32,
        grids: tuple[F32, ...],
        sup: Support,
        samples: "_Samples",
    ) -> None:
        """Add `est` warped onto the centre frame's support along `f`, the flow at the
        support's luma pixels (luma and chroma), to `samples`."""
        lgx, lgy, cgx, cgy = grids
        n = samples.count
        linear, border = cv2.INTER_LINEAR, cv2.BORDER_CONSTANT
        cv2.remap(est.yw, lgx + f[..., 0], lgy + f[..., 1], linear, samples.y[n], border)
        # Chroma moves by half its 2x2 block's mean luma flow.
        fc = f if sup.quad is None else _block_mean(f.reshape(-1, 2), sup.quad, 0) * 0.5
        cv2.remap(est.uvw, cgx + fc[..., 0], cgy + fc[..., 1], linear, samples.uv[n], border)
        samples.count = n + 1

    def _fuse(self, planes: Planes, target: Layer, yws: F32, uvws: F32, near: int) -> Planes:
        """Weighted mean of the aligned samples (n, rows, SUPPORT_ROW, channels) over the
        support; the first `near` samples are the centre and its chained neighbours."""
        sup = target.support
        # Planar copies: the arithmetic below runs several times faster on contiguous arrays.
        sy, wy = np.ascontiguousarray(yws[..., 0]), np.ascontiguousarray(yws[..., 1])
        # The first consensus comes from the frames reached by chained short flows only: far
        # frames' single long flows fail more often, and must agree with it to count.
        mean = _weighted_mean(sy[:near], wy[:near])
        weights = wy
        agree = np.ones_like(wy)
        for _ in range(2):
            # Samples far from the consensus, given their own noise, are flow errors/occlusions.
            agree = np.exp(-((sy - mean) ** 2) * wy / (2.0 * SIGMA * SIGMA))
            weights = wy * agree
            mean = _weighted_mean(sy, weights)
        total = weights.sum(axis=0)
        if sup.quad is None:
            agree_c = agree
        else:
            agree_c = _block_mean(agree.reshape(agree.shape[0], -1), sup.quad, 1)
        wc = np.ascontiguousarray(uvws[..., 2]) * agree_c
        rh, rw = target.alpha.shape
        crh, crw = target.alpha_c.shape
        s = self.shift
        y0, x0 = target.y0, target.x0
        cy0, cx0 = y0 >> s, x0 >> s
        observed_y = planes.y[y0 : y0 + rh, x0 : x0 + rw]
        observed_u = planes.u[cy0 : cy0 + crh, cx0 : cx0 + crw]
        observed_v = planes.v[cy0 : cy0 + crh, cx0 : cx0 + crw]
        fused_y = _scatter(mean, observed_y, sup.ys, sup.xs)
        fused_u = _scatter(_weighted_mean(uvws[..., 0], wc), observed_u, sup.cys, sup.cxs)
        fused_v = _scatter(_weighted_mean(uvws[..., 1], wc), observed_v, sup.cys, sup.cxs)
        mean_y = _denoise(fused_y, target.alpha, observed_y)
        mean_u = _denoise(fused_u, target.alpha_c, observed_u)
        mean_v = _denoise(fused_v, target.alpha_c, observed_v)
        holes = np.zeros((rh, rw), bool)
        holes[sup.ys, sup.xs] = total < 1e-3
        # In place: once a frame is submitted for restoring nothing else reads its planes (its
        # neighbours use the estimates made by `prepare`), so no copy of the frame is made.
        out_y, out_u, out_v = planes.y, planes.u, planes.v
        mark, mark_c = target.written, target.written_c
        region = out_y[y0 : y0 + rh, x0 : x0 + rw]
        region[mark] = np.clip(mean_y[mark] + 0.5, 0, 255).astype(np.uint8)
        for plane, fused in ((out_u, mean_u), (out_v, mean_v)):
            reg = plane[cy0 : cy0 + crh, cx0 : cx0 + crw]
            reg[mark_c] = np.clip(fused[mark_c] + 0.5, 0, 255).astype(np.uint8)
        if holes.any():
            _inpaint(out_y, out_u, out_v, holes & (target.alpha > 0.0), x0, y0, s)
        return planes


def _gather(image: F32, flat: Idx) -> F32:
    """`image`'s (h, w, channels) pixels at the flat indices `flat`: (*flat.shape, channels)."""
    return f32(np.take(image.reshape(-1, image.shape[2]), flat, axis=0))


class _Samples:
    """The aligned samples of one restore, written in place by cv2.remap (no list to stack):
    (samples, rows, SUPPORT_ROW, channels), luma (value, weight) and chroma (U, V, weight)."""

    LIMIT = 1 + 2 * RADIUS + 2 * len(FAR)

    def __init__(self, sup: Support) -> None:
        self.y = np.empty((self.LIMIT, *sup.ys.shape, 2), np.float32)
        self.uv = np.empty((self.LIMIT, *sup.cys.shape, 3), np.float32)
        self.count = 0


def _block_mean(values: F32, quad: tuple[Idx, Idx, Idx, Idx], axis: int) -> F32:
    """Per chroma pixel, the mean over its 2x2 luma block of `values`, whose `axis` runs over
    the flattened luma support (as INTER_AREA halves a whole plane)."""
    q0, q1, q2, q3 = (np.take(values, q, axis=axis) for q in quad)
    return f32((q0 + q1 + q2 + q3) * 0.25)


def _scatter(values: F32, base: U8, ys: Idx, xs: Idx) -> F32:
    """`base` as float with the support's fused `values` laid at (ys, xs). Outside the support
    nothing the result reads: the smoothing's window around the mark lies inside it."""
    out = base.astype(np.float32)
    out[ys, xs] = values
    return out


def _noise(values: F32, where: Bool) -> float:
    """Robust noise level from the Laplacian's median absolute value (Gaussian noise: sqrt(20))."""
    if where.sum() < 16:
        return 0.0
    lap = cv2.Laplacian(values, cv2.CV_32F, ksize=1)
    return float(1.4826 * np.median(np.abs(lap[where])) / np.sqrt(20.0))


def _denoise(fused: F32, alpha: F32, observed: U8) -> F32:
    """Edge-preserving smoothing of what fusion left noisy, as strong as the excess noise.

    Where neighbours saw the same point under the same opacity (a still camera), the codec's
    noise is the same in every frame and fusion cannot average it away: the recovered picture
    stays 1 / (1 - a) times noisier than its surroundings. The excess over the surroundings' own
    noise sets a bilateral filter's range; each pixel takes as much of it as its opacity
    amplified its noise (none outside the mark)."""
    body = alpha > 0.5
    ring = (alpha == 0.0) & (
        cv2.dilate((alpha > 0.0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    )
    inner = _noise(fused, body)
    outer = _noise(observed.astype(np.float32), ring)
    excess = float(np.sqrt(max(inner * inner - outer * outer, 0.0)))
    if excess < 0.25:
        return fused
    smooth = f32(
        cv2.bilateralFilter(fused, DENOISE_DIAMETER, DENOISE_RANGE * excess, DENOISE_SPACE)
    )
    amplified = np.clip((1.0 / np.maximum(1.0 - alpha, 0.05) - 1.0) / 0.5, 0.0, 1.0)
    return f32(fused + (smooth - fused) * amplified)


def _weighted_mean(samples: F32, weights: F32) -> F32:
    total = weights.sum(axis=0)
    acc = (samples * weights).sum(axis=0)
    fallback = samples[0]
    return np.where(total > 1e-6, acc / np.maximum(total, 1e-6), fallback).astype(np.float32)


def _inpaint(y: U8, u: U8, v: U8, holes: Bool, x0: int, y0: int, shift: int) -> None:
    """Fill what no frame showed from the surroundings (Telea), in place."""
    pad = 8
    h, w = holes.shape
    ay0, ax0 = max(0, y0 - pad), max(0, x0 - pad)
    ay1, ax1 = min(y.shape[0], y0 + h + pad), min(y.shape[1], x0 + w + pad)
    mask = np.zeros((ay1 - ay0, ax1 - ax0), np.uint8)
    mask[y0 - ay0 : y0 - ay0 + h, x0 - ax0 : x0 - ax0 + w] = holes.astype(np.uint8)
    y[ay0:ay1, ax0:ax1] = cv2.inpaint(y[ay0:ay1, ax0:ax1], mask, 3, cv2.INPAINT_TELEA)
    cmask = mask
    if shift:
        small = cv2.resize(
            mask.astype(np.float32),
            ((ax1 - ax0) >> 1, (ay1 - ay0) >> 1),
            interpolation=cv2.INTER_AREA,
        )
        cmask = (small > 0.0).astype(np.uint8)
    cy0, cx0 = ay0 >> shift, ax0 >> shift
    ch, cw = cmask.shape
    for plane in (u, v):
        plane[cy0 : cy0 + ch, cx0 : cx0 + cw] = cv2.inpaint(
            plane[cy0 : cy0 + ch, cx0 : cx0 + cw], cmask, 3, cv2.INPAINT_TELEA
        )
