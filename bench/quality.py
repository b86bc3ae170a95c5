"""Quality benchmark of watermark removal against ground truth.

    .venv/bin/python bench/quality.py [--quick] [--clip NAME] [--provider NAME|module:function]

Builds its corpus itself (tests/removal/engine/synthetic.py: natural pictures from scikit-image
and procedural scenes, panned and zoomed, portrait 704x1280 and landscape 1280x704, a bright
white scene, a dark one, a fast pan, and clips with no mark at all), our own rendition of the
Sora 2 mark (alpha ~0.73, a username line, jumping between places), encoded H.264 CRF 23 + AAC.
Providers: the engine; baselines doing nothing and OpenCV Telea on the true mark's pixels; and
a "ceiling" (the clean frames through the same encodes: what a perfect remover would reach).
Each provider is a function (src: Path, dst: Path) -> dict | None, run in its own process (its
wall time and peak RSS are its own). Per clip and on average it prints: PSNR over the mark's box
(PSNRbox), over the mark's own pixels only (PSNRmk, stricter), and SSIM over the box, all vs the
clean frames; flicker (mean
frame-to-frame change in the box, result / clean); PSNR outside the boxes vs the input;
detection recall over marked frames and false marks on unmarked clips (engine only); seconds,
CPU seconds (the process's user + system time, all threads: on a shared machine wall time
moves with the neighbours' load, CPU time much less), x real time and peak RSS.
"""

import argparse
import importlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.removal.engine.synthetic import (  # noqa: E402
    ClipSpec,
    clean_frame,
    full_alpha,
    load_spec,
    mark_at,
    write_clip,
)

FULL = [
    ClipSpec("astronaut-portrait", 704, 1280, 10.0, "astronaut", speed=2.0, seed=1),
    ClipSpec("coffee-landscape", 1280, 704, 8.0, "coffee", speed=2.0, seed=2),
    ClipSpec("chelsea-portrait", 704, 1280, 8.0, "chelsea", speed=1.5, seed=3),
    ClipSpec("rocket-landscape", 1280, 704, 8.0, "rocket", speed=2.0, seed=4),
    ClipSpec("white-sky-portrait", 704, 1280, 8.0, "white", speed=2.0, seed=5),
    ClipSpec("dark-night-landscape", 1280, 704, 8.0, "dark", speed=2.0, seed=6),
    ClipSpec("fast-pan-portrait", 704, 1280, 8.0, "coffee", speed=8.0, zoom=0.2, seed=7),
    ClipSpec("unmarked-astronaut", 704, 1280, 4.0, "astronaut", speed=2.0, marked=False, seed=8),
    ClipSpec("unmarked-stripes", 1280, 704, 4.0, "stripes", speed=2.0, marked=False, seed=9),
]
QUICK = [
    ClipSpec("q-astronaut", 352, 640, 3.0, "astronaut", speed=2.0, segment_seconds=1.5, seed=1),
    ClipSpec("q-coffee-land", 640, 352, 3.0, "coffee", speed=2.0, segment_seconds=1.5, seed=2),
    ClipSpec("q-white", 352, 640, 3.0, "white", speed=2.0, segment_seconds=1.5, seed=5),
    ClipSpec("q-unmarked", 352, 640, 2.0, "astronaut", marked=False, seed=8),
]


# Providers: (src, dst) -> optional dict of facts (the engine's report). ---------------------


def provider_engine(src: Path, dst: Path) -> dict | None:
    from dataclasses import asdict

    from apps.removal.engine import NoMarkFound, remove_watermark

    try:
        return asdict(remove_watermark(src, dst))
    except NoMarkFound:
        return {"no_mark": True}


def provider_nothing(src: Path, dst: Path) -> dict | None:
    shutil.copyfile(src, dst)
    return None


def provider_telea(src: Path, dst: Path) -> dict | None:
    """OpenCV Telea inpainting of the true mark's pixels (it is told where the mark is)."""
    spec = load_spec(src)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=spec.fps)
        vout.width, vout.height, vout.pix_fmt = spec.width, spec.height, "yuv420p"
        vout.options = {"crf": "18", "preset": "veryfast"}
        for i, frame in enumerate(inp.decode(vin)):
            rgb = frame.to_ndarray(format="rgb24")
            mark = (full_alpha(spec, i) > 0.02).astype(np.uint8)
            if mark.any():
                mask = np.asarray(cv2.dilate(mark, np.ones((3, 3), np.uint8)), np.uint8)
                rgb = np.asarray(cv2.inpaint(rgb, mask, 3, cv2.INPAINT_TELEA), np.uint8)
            new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            new.pts = frame.pts
            for packet in vout.encode(new):
                out.mux(packet)
        for packet in vout.encode(None):
            out.mux(packet)
    return None


def provider_ceiling(src: Path, dst: Path) -> dict | None:
    """Not a remover: the clean frames through the same encode as the source (H.264 CRF 23),
    then the engine's own (CRF 18). What a perfect remover would still lose to the codec."""
    spec = load_spec(src)
    clean = dst.with_suffix(".clean.mp4")
    write_clip(replace(spec, marked=False, audio=False), clean)
    with av.open(str(clean)) as inp, av.open(str(dst), "w") as out:
        vout = out.add_stream("libx264", rate=spec.fps)
        vout.width, vout.height, vout.pix_fmt = spec.width, spec.height, "yuv420p"
        vout.options = {"crf": "18", "preset": "veryfast"}
        for frame in inp.decode(video=0):
            new = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
            new.pts = frame.pts
            for packet in vout.encode(new):
                out.mux(packet)
        for packet in vout.encode(None):
            out.mux(packet)
    clean.unlink()
    clean.with_suffix(".json").unlink()
    return None


PROVIDERS = {
    "engine": provider_engine,
    "nothing": provider_nothing,
    "telea": provider_telea,
    "ceiling": provider_ceiling,
}


def resolve(name: str):
    if name in PROVIDERS:
        return PROVIDERS[name]
    module, _, func = name.partition(":")
    return getattr(importlib.import_module(module), func)


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM restarts at exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def run_child(provider: str, src: Path, dst: Path, facts: Path) -> None:
    result = resolve(provider)(src, dst)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    facts.write_text(json.dumps({"result": result, "rss": _peak_rss_mb(), "cpu": cpu}))


def run_provider(provider: str, src: Path, dst: Path) -> tuple[dict | None, float, float, float]:
    """Run in a fresh process: (facts, wall seconds, peak RSS MB, CPU seconds of that process)."""
    facts = dst.with_suffix(".facts.json")
    cmd = [sys.executable, __file__, "--child", provider, str(src), str(dst), str(facts)]
    started = time.monotonic()
    subprocess.run(cmd, check=True)
    seconds = time.monotonic() - started
    child = json.loads(facts.read_text())
    return child["result"], seconds, child["rss"], child["cpu"]


# Metrics. ------------------------------------------------------------------------------------


def _frames(path: Path):
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield f.to_ndarray(format="rgb24")


def _box(spec: ClipSpec, index: int) -> tuple[slice, slice] | None:
    found = mark_at(spec, index)
    if found is None:
        return None
    _, alpha, x0, y0 = found
    ys, xs = np.nonzero(alpha > 0.02)
    return (
        slice(y0 + ys.min(), min(spec.height, y0 + ys.max() + 1)),
        slice(x0 + xs.min(), min(spec.width, x0 + xs.max() + 1)),
    )


def measure(spec: ClipSpec, src: Path, dst: Path | None) -> dict:
    from skimage.metrics import structural_similarity

    se_in = n_in = 0.0
    se_box = n_box = 0.0
    se_out = n_out = 0.0
    ssims: list[float] = []
    flick_res: list[float] = []
    flick_clean: list[float] = []
    prev: tuple[np.ndarray, np.ndarray, tuple] | None = None
    outs = _frames(dst) if dst is not None and dst.exists() else None
    for i, inp in enumerate(_frames(src)):
        out = next(outs) if outs is not None else inp
        box = _box(spec, i)
        a = full_alpha(spec, i)
        outside = np.ones(a.shape, bool)
        if box is not None:
            grow = (
                slice(max(0, box[0].start - 8), box[0].stop + 8),
                slice(max(0, box[1].start - 8), box[1].stop + 8),
            )
            outside[grow] = False
            clean = clean_frame(spec, i)
            mark = cv2.dilate((a > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            d = out.astype(np.float32) - clean.astype(np.float32)
            se_in += float((d[mark] ** 2).sum())
            n_in += float(mark.sum() * 3)
            ro, rc = out[box], clean[box]
            db = ro.astype(np.float32) - rc.astype(np.float32)
            se_box += float((db**2).sum())
            n_box += float(db.size)
            ssims.append(structural_similarity(ro, rc, channel_axis=2, data_range=255))
            if prev is not None and prev[2] == box:
                flick_res.append(float(np.abs(ro.astype(np.float32) - prev[0]).mean()))
                flick_clean.append(float(np.abs(rc.astype(np.float32) - prev[1]).mean()))
            prev = (ro.astype(np.float32), rc.astype(np.float32), box)
        else:
            prev = None
        d = (out.astype(np.float32) - inp.astype(np.float32))[outside]
        se_out += float((d**2).sum())
        n_out += float(d.size)

    def psnr(se: float, n: float) -> float:
        return float("inf") if se == 0 else 10 * np.log10(255.0**2 / (se / n))

    return {
        "psnr_box": psnr(se_box, n_box) if n_box else None,
        "psnr_in": psnr(se_in, n_in) if n_in else None,
        "ssim_in": float(np.mean(ssims)) if ssims else None,
        "flicker": (float(np.mean(flick_res)) / max(float(np.mean(flick_clean)), 1e-6))
        if flick_res
        else None,
        # No output (no mark found): nothing was changed, nothing to compare.
        "psnr_out": psnr(se_out, n_out) if outs is not None else None,
    }


def detection(spec: ClipSpec, facts: dict | None) -> dict:
    if facts is None:
        return {}
    if facts.get("no_mark"):
        return {"recall": 0.0 if spec.marked else None, "false_marks": 0}
    marked = {i for i in range(spec.frames) if mark_at(spec, i) is not None}
    hit = set()
    false = 0
    for seg in facts["segments"]:
        for i in range(seg["start_frame"], seg["stop_frame"]):
            found = mark_at(spec, i)
            if found is not None and found[0] == seg["place"]:
                hit.add(i)
            else:
                false += 1
    return {"recall": len(hit) / len(marked) if marked else None, "false_marks": false}


def fmt(v, spec="{:.2f}") -> str:
    return "-" if v is None else spec.format(v)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small corpus (352x640, 2-3 s)")
    parser.add_argument("--clip", action="append", help="only this clip (repeatable)")
    parser.add_argument("--provider", action="append", help="engine, nothing, telea or mod:fn")
    parser.add_argument("--corpus", type=Path, help="where clips are cached (default: temp)")
    args = parser.parse_args()
    specs = QUICK if args.quick else FULL
    if args.clip:
        specs = [s for s in FULL + QUICK if s.name in args.clip]
    providers = args.provider or ["engine", "nothing", "telea", "ceiling"]
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="unmark-quality-"))
    corpus.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="unmark-quality-out-"))
    header = (
        f"{'provider':9} {'clip':22} {'PSNRbox':>7} {'PSNRmk':>7} {'SSIMbox':>7} "
        f"{'flick':>6} {'PSNRout':>8} "
        f"{'recall':>7} {'false':>6} {'sec':>6} {'cpu s':>6} {'xRT':>5} {'RSS MB':>7}"
    )
    print(header)
    totals: dict[str, list[dict]] = {p: [] for p in providers}
    for spec in specs:
        src = corpus / f"{spec.name}.mp4"
        if not src.exists() or not src.with_suffix(".json").exists():
            write_clip(spec, src)
        for provider in providers:
            dst = work / f"{spec.name}.{provider.replace(':', '_')}.mp4"
            dst.unlink(missing_ok=True)
            facts, seconds, rss, cpu = run_provider(provider, src, dst)
            row = measure(spec, src, dst if dst.exists() else None)
            row.update(detection(spec, facts if provider == "engine" else None))
            row.update(
                seconds=seconds, cpu=cpu, xrt=spec.seconds / seconds, rss=rss, marked=spec.marked
            )
            totals[provider].append(row)
            print(
                f"{provider:9} {spec.name:22} {fmt(row['psnr_box']):>7} {fmt(row['psnr_in']):>7} "
                f"{fmt(row['ssim_in'], '{:.4f}'):>7} {fmt(row['flicker']):>6} "
                f"{fmt(row['psnr_out']):>8} {fmt(row.get('recall'), '{:.2%}'):>7} "
                f"{fmt(row.get('false_marks'), '{:d}'):>6} {seconds:6.2f} {cpu:6.2f} "
                f"{row['xrt']:5.2f} {rss:7.0f}",
                flush=True,
            )
    print()
    for provider, rows in totals.items():
        marked = [r for r in rows if r["marked"]]

        def mean(key: str, rows: list[dict] = marked) -> float | None:
            vals = [r[key] for r in rows if r.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        false = sum(r.get("false_marks") or 0 for r in rows)
        print(
            f"{provider:9} {'AVERAGE (marked)':22} {fmt(mean('psnr_box')):>7} "
            f"{fmt(mean('psnr_in')):>7} "
            f"{fmt(mean('ssim_in'), '{:.4f}'):>7} {fmt(mean('flicker')):>6} "
            f"{fmt(mean('psnr_out')):>8} {fmt(mean('recall'), '{:.2%}'):>7} "
            f"{false if provider == 'engine' else '-':>6} {fmt(mean('seconds', rows)):>6} "
            f"{fmt(mean('cpu', rows)):>6} "
            f"{fmt(mean('xrt', rows)):>5} {max(r['rss'] for r in rows):7.0f}"
        )


if __name__ == "__main__":
    main()
