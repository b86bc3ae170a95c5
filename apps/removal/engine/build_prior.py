"""Build the shipped Sora 2 matte prior from one real Sora 2 frame.

Why this exists: the engine needs a starting matte (opacity per pixel) of the mascot and the
wordmark to find the mark in a frame and to fall back on when a video shows too little motion
to estimate the matte from the video itself. The prior is measured, not drawn: it comes from a
real 704x1280 Sora 2 frame (`resources/first_frame.png` of linkedlist771/SoraWatermarkCleaner),
where the mark sits bottom-left over a smooth blue table, and from that repository's mascot
silhouette (`resources/watermark_template.png`), which confines the mascot's matte to its shape.

    python -m apps.removal.engine.build_prior first_frame.png watermark_template.png

writes `assets/sora2_prior.png` (opacity x 65535, 16 bit) and `assets/sora2_prior.json` (where
that crop sits in the 704x1280 reference frame, and the parts' boxes). The upstream pictures are
not committed; only what this script derives from them is.
"""

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

ASSETS = Path(__file__).resolve().parent / "assets"
# Where to look in the real frame (reference coordinates): the mark and its surroundings.
AREA = (10, 1090, 220, 110)  # x, y, w, h
# Generous box around the mark itself: background is fitted outside it.
MARK_BOX = (28, 1108, 164, 72)
WHITE = 255.0

F32 = npt.NDArray[np.float32]


def fit_background(img: F32, known: npt.NDArray[np.bool_]) -> F32:
    """Fit each channel with a quadratic surface over the known (unmarked, off-line) pixels."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xs, ys = xx / w, yy / h
    basis = np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=-1)
    a = basis[known]
    out = np.empty_like(img)
    for c in range(3):
        coef, *_ = np.linalg.lstsq(a, img[..., c][known], rcond=None)
        out[..., c] = basis @ coef
    return out


def line_mask(img: F32, mark: npt.NDArray[np.bool_], bg_guess: F32) -> npt.NDArray[np.bool_]:
    """The thin white line crossing the table: fitted as x = a*y + c outside the mark."""
    bright = (img[..., 0] - bg_guess[..., 0] > 40) & ~mark
    ys, xs = np.nonzero(bright)
    a, c = np.polyfit(ys.astype(np.float64), xs.astype(np.float64), 1)
    h, w = bright.shape
    yy, xx = np.mgrid[0:h, 0:w]
    return np.abs(xx - (a * yy + c)) < 6.0


def estimate_alpha(img: F32, bg: F32) -> F32:
    """Least-squares opacity of a white overlay per pixel, over the three channels."""
    span = WHITE - bg
    num = ((img - bg) * span).sum(axis=-1)
    den = (span * span).sum(axis=-1)
    return np.clip(num / np.maximum(den, 1.0), 0.0, 1.0).astype(np.float32)


def mascot_support(template: npt.NDArray[np.uint8], alpha: F32) -> npt.NDArray[np.bool_]:
    """Register the high-resolution silhouette onto the mascot and return its support."""
    sil = (template[..., 3] > 127).astype(np.float32)
    ys, xs = np.nonzero(sil)
    sil = sil[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    body = (alpha > 0.35).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(body)
    # The mascot is the leftmost large blob.
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] > 300]
    i = min(big, key=lambda k: stats[k, cv2.CC_STAT_LEFT])
    x, y, w, h = (int(v) for v in stats[i, :4])
    best = (-1.0, 0, 0, 0, 0)
    for dw in range(-2, 3):
        for dh in range(-2, 3):
            small = cv2.resize(sil, (w + dw, h + dh), interpolation=cv2.INTER_AREA)
            for dx in range(-2, 3):
                for dy in range(-2, 3):
                    canvas = np.zeros_like(alpha)
                    y0, x0 = y + dy, x + dx
                    canvas[y0 : y0 + h + dh, x0 : x0 + w + dw] = small
                    score = float((canvas * np.minimum(alpha / 0.73, 1.0)).sum())
                    score /= float(np.sqrt((canvas * canvas).sum()) + 1e-6)
                    if score > best[0]:
                        best = (score, dx, dy, dw, dh)
    _, dx, dy, dw, dh = best
    small = cv2.resize(sil, (w + dw, h + dh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros_like(alpha)
    canvas[y + dy : y + dy + h + dh, x + dx : x + dx + w + dw] = small
    return canvas > 0.02


def build(frame_path: Path, template_path: Path) -> tuple[F32, dict[str, object]]:
    frame = np.asarray(cv2.imread(str(frame_path), cv2.IMREAD_COLOR))[..., ::-1].astype(np.float32)
    template = np.asarray(cv2.imread(str(template_path), cv2.IMREAD_UNCHANGED), np.uint8)
    ax, ay, aw, ah = AREA
    img = frame[ay : ay + ah, ax : ax + aw]
    mx, my, mw, mh = MARK_BOX
    mark = np.zeros((ah, aw), bool)
    mark[my - ay : my - ay + mh, mx - ax : mx - ax + mw] = True
    rough = fit_background(img, ~mark & (img[..., 0] < 60))
    line = line_mask(img, mark, rough)
    bg = fit_background(img, ~mark & ~line)
    alpha = estimate_alpha(img, bg)
    alpha[~mark] = 0.0
    # Under the white line the overlay cannot be told from the line: fill from the strokes around.
    hole = (line & mark).astype(np.uint8)
    filled = cv2.inpaint(np.round(alpha * 255).astype(np.uint8), hole, 3, cv2.INPAINT_TELEA)
    # Telea smears strokes across the gap: keep its shape, not its soft values.
    inside = filled.astype(np.float32) / 255.0 > 0.4
    body = float(np.median(alpha[mark & ~line & (alpha > 0.6)]))
    alpha = np.where(hole > 0, np.where(inside, body, 0.0), alpha).astype(np.float32)
    alpha[alpha < 0.04] = 0.0
    # Confine the mascot to its silhouette; the wordmark to its letters' blob.
    support = mascot_support(template, alpha)
    left_of_text = np.zeros_like(support)
    ys, xs = np.nonzero(support)
    left_of_text[:, : xs.max() + 2] = True
    alpha[left_of_text & ~support] = 0.0
    ys, xs = np.nonzero(alpha > 0.2)
    pad = 3
    y0, y1, x0, x1 = ys.min() - pad, ys.max() + pad + 1, xs.min() - pad, xs.max() + pad + 1
    crop = alpha[y0:y1, x0:x1]
    mascot_right = int(np.nonzero(support.any(axis=0))[0].max()) - x0 + 1
    meta: dict[str, object] = {
        "source": "linkedlist771/SoraWatermarkCleaner resources/first_frame.png (704x1280)",
        "reference_size": [704, 1280],
        "origin": [int(ax + x0), int(ay + y0)],
        "size": [int(x1 - x0), int(y1 - y0)],
        "mascot_width": int(mascot_right),
        "white": WHITE,
        "body_opacity": float(np.median(crop[:, :mascot_right][crop[:, :mascot_right] > 0.6])),
    }
    return crop, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frame", type=Path)
    parser.add_argument("template", type=Path)
    args = parser.parse_args()
    crop, meta = build(args.frame, args.template)
    ASSETS.mkdir(exist_ok=True)
    cv2.imwrite(str(ASSETS / "sora2_prior.png"), np.round(crop * 65535).astype(np.uint16))
    (ASSETS / "sora2_prior.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
