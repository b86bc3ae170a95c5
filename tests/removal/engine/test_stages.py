"""Each stage on its own: detection, segmentation, matte, Poisson integration."""

import av
import numpy as np

from apps.removal.engine import SORA2
from apps.removal.engine import pipeline as P
from apps.removal.engine.detect import Detection, Detector
from apps.removal.engine.media import Planes, probe
from apps.removal.engine.poisson import integrate
from apps.removal.engine.prior import load_prior
from apps.removal.engine.recover import DENOISE_DIAMETER, RING, Recoverer, make_layer
from apps.removal.engine.segments import find_segments

from .synthetic import full_alpha, mark_at


def test_poisson_integration_recovers_a_field_from_its_gradients():
    rng = np.random.default_rng(0)
    u = np.zeros((40, 60))
    u[8:30, 10:50] = rng.random((22, 40))
    gx, gy = np.diff(u, axis=1), np.diff(u, axis=0)
    assert np.abs(integrate(gx.astype(np.float32), gy.astype(np.float32)) - u).max() < 1e-4


def test_detector_finds_each_place_sub_pixel(clips):
    spec, src = clips["marked"]
    prior = load_prior(SORA2, spec.width, spec.height)
    detector = Detector(prior, spec.width, spec.height, SORA2.detect_threshold)
    with av.open(str(src)) as c:
        frames = [np.asarray(f.to_ndarray()[: spec.height], np.uint8) for f in c.decode(video=0)]
    for i in (5, 80):
        found, scores = detector.detect(frames[i])
        truth = mark_at(spec, i)
        assert truth is not None
        assert found is not None
        assert prior.places[found.place].name == truth[0]
        assert scores[found.place] == max(scores)
    # Nothing where there is no mark: the same frame with the mark's places blanked out.
    blank = frames[5].copy()
    blank[500:640, 0:200] = 90
    assert detector.detect(blank)[0] is None


def test_segments_drop_blips_and_split_jumps_by_evidence():
    def det(place: int) -> Detection:
        return Detection(place, 10.0 + place * 100, 20.0, 0.9)

    dets: list[Detection | None] = [det(0)] * 20 + [None] * 10 + [det(1)] * 20
    dets[5] = det(2)  # a one-frame blip elsewhere
    scores = [[0.0, 0.0, 0.0] for _ in dets]
    for f in range(20, 30):
        scores[f] = [0.2, 0.6, 0.0] if f >= 24 else [0.6, 0.2, 0.0]
    segs = find_segments(dets, scores, min_frames=5, max_extend=30)
    assert [(s.place, s.start, s.stop) for s in segs] == [(0, 0, 24), (1, 24, 50)]


def test_matte_from_the_video_is_close_to_the_truth(clips):
    spec, src = clips["marked"]
    info = probe(src)
    analysis = P._analyse(src, info, SORA2, lambda: False, lambda d, t: None)
    layers, mattes = P._mattes(analysis, SORA2, 1)
    for seg, layer, matte in zip(analysis.segments, layers, mattes, strict=True):
        truth = full_alpha(spec, (seg.start + seg.stop) // 2)[
            layer.y0 : layer.y1, layer.x0 : layer.x1
        ]
        assert matte.source == "video"
        err = np.abs(truth - layer.alpha)
        # Measured 0.017 (mean over the region) and 0.04 (body) at this half scale.
        assert err.mean() < 0.03
        assert err[truth > 0.5].mean() < 0.07
        # The username line, which has no prior, is found too.
        user_rows = truth[int(50 * spec.scale) + 8 :, :]
        est_rows = layer.alpha[int(50 * spec.scale) + 8 :, :]
        assert (est_rows[user_rows > 0.5] > 0.3).mean() > 0.7


def test_support_holds_every_pixel_the_smoothing_reads_and_chroma_blocks():
    alpha = np.zeros((40, 60), np.float32)
    alpha[18:22, 3:9] = 0.7  # near the region's left edge
    alpha[30:33, 40:47] = 0.3
    r = DENOISE_DIAMETER // 2
    for shift in (0, 1):  # 4:4:4 and 4:2:0
        layer = make_layer(10, 10, alpha, 235.0, shift, 0.93, (200, 200))
        sup = layer.support
        luma = np.zeros(layer.alpha.shape, bool)
        luma[sup.ys, sup.xs] = True
        for y, x in zip(*np.nonzero(layer.alpha > 0), strict=True):
            assert luma[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].all()
        # Far from the mark nothing is fused: the support is a fraction of the box.
        assert luma.mean() < 0.5
        # What is written is the mark and its ring, all of it fused.
        ring = np.zeros(layer.alpha.shape, bool)
        for y, x in zip(*np.nonzero(layer.alpha > 0), strict=True):
            ring[max(0, y - RING) : y + RING + 1, max(0, x - RING) : x + RING + 1] = True
        assert np.array_equal(layer.written, ring)
        assert luma[layer.written].all()
    assert sup.quad is not None
    flat_y, flat_x = sup.ys.ravel(), sup.xs.ravel()
    for q, (dy, dx) in zip(sup.quad, ((0, 0), (0, 1), (1, 0), (1, 1)), strict=True):
        assert (flat_y[q] == 2 * sup.cys + dy).all()
        assert (flat_x[q] == 2 * sup.cxs + dx).all()


def test_a_matte_without_opacity_restores_nothing():
    rng = np.random.default_rng(0)
    layer = make_layer(20, 16, np.zeros((24, 40), np.float32), 235.0, 1, 0.93, (96, 64))
    frames = [
        Planes(
            rng.integers(0, 256, (64, 96), dtype=np.uint8),
            rng.integers(0, 256, (32, 48), dtype=np.uint8),
            rng.integers(0, 256, (32, 48), dtype=np.uint8),
            i,
            0,
        )
        for i in range(3)
    ]
    recoverer = Recoverer(1)
    for i, planes in enumerate(frames):
        recoverer.prepare(i, planes, layer, {0: layer})
    recoverer.link(2)
    before = [p.copy() for p in (frames[1].y, frames[1].u, frames[1].v)]
    out = recoverer.restore(1, frames[1], layer, 0)
    for plane, was in zip((out.y, out.u, out.v), before, strict=True):
        assert np.array_equal(plane, was)


def test_the_ring_around_the_mark_is_averaged_over_frames_and_nothing_beyond_it_changes():
    """A still grey picture whose codec noise differs in every frame: around the mark the
    result is the mean over the neighbours (closer to the picture), farther out untouched."""
    rng = np.random.default_rng(1)
    alpha = np.zeros((32, 48), np.float32)
    alpha[12:20, 14:34] = 0.7
    layer = make_layer(24, 16, alpha, 235.0, 1, 0.93, (96, 64))
    a = np.zeros((64, 96), np.float32)
    a[16:48, 24:72] = alpha

    def frame(i: int) -> Planes:
        picture = 100.0 + rng.normal(0.0, 4.0, (64, 96))
        y = a * 235.0 + (1.0 - a) * picture
        chroma = np.full((32, 48), 128, np.uint8)
        return Planes(np.clip(y + 0.5, 0, 255).astype(np.uint8), chroma, chroma.copy(), i, 0)

    frames = [frame(i) for i in range(11)]
    recoverer = Recoverer(1)
    for i, planes in enumerate(frames):
        recoverer.prepare(i, planes, layer, {0: layer})
    recoverer.link(10)
    before = frames[5].y.copy()
    out = recoverer.restore(5, frames[5], layer, 0).y
    ring = np.zeros((64, 96), bool)
    ring[16:48, 24:72] = layer.written & (layer.alpha == 0.0)
    assert ring.sum() > 100
    err_before = np.sqrt(np.mean((before[ring] - 100.0) ** 2))
    err_after = np.sqrt(np.mean((out[ring] - 100.0) ** 2))
    assert err_after < 0.6 * err_before
    beyond = np.ones((64, 96), bool)
    beyond[16:48, 24:72] = ~layer.written
    assert np.array_equal(out[beyond], before[beyond])
