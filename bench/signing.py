"""Signing benchmark: what Content Credentials cost per video, in time, bytes and memory.

    .venv/bin/python bench/signing.py [--seconds 60] [--short-seconds 5] [--repeat 5]
                                      [--export-mbps 4] [--large-seconds 30] [--compare-whole]

Generates Sora-shaped clips (704x1280, 30 fps, with sound; `tests/clips.py`): a short one and
a long one, each with an original that carries its maker's credentials (so the ingredient path
with a manifest inside is measured). Those flat pictures compress to almost nothing, so two
clips of noise give real sizes: a `--seconds` one at `--export-mbps` (a Sora export's bitrate:
about 30 MB a minute) and a `--large-seconds` one at about 17 MB a second (500 MB for 30 s,
the upload cap), to see memory far past a real export. 0 skips either.

Each clip is measured in a fresh process (the local test signer, as on a developer machine):
`sign_result` (signing plus reading the file back to validate it) `--repeat` times, then
`read_credentials` alone, with the resident memory sampled every 5 ms; prints the times, the
bytes the manifest adds, and the peak growth of resident memory over the process's baseline.
For the long clip it then decodes the signed video and compares every frame and packet with
the unsigned one.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024
HEADER = (
    f"{'clip':<16} {'size':>9} {'sign+check median (min-max)':>29} {'read':>7} "
    f"{'added':>8}  peak RSS growth"
)
WIDTH, HEIGHT, FPS = 704, 1280, 30


def main() -> None:
    args = parse_args()
    if args.measure:
        measure(Path(args.measure), Path(args.original), args.repeat, args.compare, args.merkle_kb)
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="unmark-signing-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    setup_django(workdir)
    clips = [("short", args.short_seconds), ("long", args.seconds)]
    print(f"clips: {WIDTH}x{HEIGHT}, {FPS} fps, with sound; the local test signer")
    print(HEADER)
    for label, seconds in clips:
        result, original = make_pair(workdir, label, seconds)
        report(label, seconds, result, original, args.repeat, compare=label == "long")
    original = workdir / f"long-{args.seconds:g}s-original.mp4"
    if args.export_mbps:
        export = workdir / f"export-{args.seconds:g}s-{args.export_mbps:g}mbps.mp4"
        make_noise(export, args.seconds, mbps=args.export_mbps)
        report("export", args.seconds, export, original, args.repeat, compare=True)
    if args.large_seconds:
        large = make_noise(workdir / f"large-{args.large_seconds:g}s.mp4", args.large_seconds)
        report("large", args.large_seconds, large, original, 2)
        if args.compare_whole:
            report("whole", args.large_seconds, large, original, 2, merkle_kb=0)
    startup = time_startup_check()
    print(f"check_signing_keys() at start-up (a trial signing): {startup * 1000:.0f} ms")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--short-seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--export-mbps", type=float, default=4)
    parser.add_argument("--large-seconds", type=float, default=30)
    parser.add_argument(
        "--compare-whole",
        action="store_true",
        help="also measure the large clip with the samples hashed whole (no Merkle chunks)",
    )
    parser.add_argument(
        "--workdir", help="keep the clips here, and reuse those already made (same options)"
    )
    parser.add_argument("--merkle-kb", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--original", help=argparse.SUPPRESS)
    parser.add_argument("--compare", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def setup_django(workdir: Path) -> None:
    os.environ.update({"DJANGO_ENV": "local", "VAR_DIR": str(workdir), "LOG_LEVEL": "WARNING"})
    for name in ("C2PA_CERT_CHAIN", "C2PA_PRIVATE_KEY", "C2PA_SIGNING", "C2PA_TIMESTAMP_URL"):
        os.environ.pop(name, None)
        os.environ.pop(f"{name}_FILE", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def make_pair(workdir: Path, label: str, seconds: float) -> tuple[Path, Path]:
    """A provider's result (no mark) and the person's original (marked, with credentials)."""
    from tests.clips import make_clip
    from tests.provenance.helpers import sign_like_sora

    result = workdir / f"{label}-{seconds:g}s.mp4"
    original = workdir / f"{label}-{seconds:g}s-original.mp4"
    if result.exists() and original.exists():
        return result, original
    started = time.monotonic()

    def clip(path: Path, *, mark: bool) -> Path:
        return make_clip(
            path, seconds=seconds, width=WIDTH, height=HEIGHT, fps=FPS, mark=mark, audio=True
        )

    clip(result, mark=False)
    sign_like_sora(clip(workdir / f"{label}-{seconds:g}s-marked.mp4", mark=True), original)
    print(f"  (made the {seconds:g} s clips in {time.monotonic() - started:.0f} s)", flush=True)
    return result, original


def make_noise(path: Path, seconds: float, *, mbps: float = 0) -> Path:
    """Noise, which barely compresses: at `mbps` megabits a second, or as large as it comes
    out at a fixed quality (about 17 MB a second)."""
    import av
    import numpy as np

    if path.exists():
        return path
    started = time.monotonic()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    options = {"preset": "ultrafast"} | ({} if mbps else {"qp": "20"})
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=FPS, options=options)
        if mbps:
            video.bit_rate = int(mbps * 1_000_000)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = output.add_stream("aac", rate=44100)
        for index in range(int(seconds * FPS)):
            picture = np.roll(base, index * 7, axis=1) ^ rng.integers(
                0, 40, (HEIGHT, WIDTH, 3), dtype=np.uint8
            )
            output.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        output.mux(video.encode())
        for start in range(0, int(seconds * 44100), 1024):
            frame = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            output.mux(sound.encode(frame))
        output.mux(sound.encode())
    made = time.monotonic() - started
    print(f"  (made the {seconds:g} s noise clip in {made:.0f} s)", flush=True)
    return path


def report(
    label: str,
    seconds: float,
    result: Path,
    original: Path,
    repeat: int,
    *,
    compare: bool = False,
    merkle_kb: int | None = None,
) -> None:
    command = [sys.executable, __file__, "--measure", str(result), "--original", str(original)]
    command += ["--repeat", str(repeat)] + (["--compare"] if compare else [])
    if merkle_kb is not None:
        command += ["--merkle-kb", str(merkle_kb)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ)
    if done.returncode:
        sys.exit(f"measuring {label} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    times = [t * 1000 for t in figures["sign_seconds"]]
    spread = f"{statistics.median(times):.0f} ms ({min(times):.0f}-{max(times):.0f})"
    print(
        f"{f'{label} {seconds:g} s':<16} {figures['size'] / MB:>7.1f}MB {spread:>29} "
        f"{figures['read_seconds'] * 1000:>4.0f} ms {figures['added']:>6} B "
        f"{figures['peak_growth'] / MB:>7.1f} MB (peak {figures['peak'] / MB:.0f} MB)",
        flush=True,
    )
    if compare:
        print(
            f"        {label}: {figures['frames']} frames decoded from the signed video; frames "
            f"and packets identical to the unsigned one: {figures['identical']}"
        )


def measure(
    result: Path, original: Path, repeat: int, compare: bool, merkle_kb: int | None
) -> None:
    """In a fresh process: sign `result` `repeat` times, then read it, sampling memory."""
    setup_django(Path(os.environ["VAR_DIR"]))
    from apps.provenance import read_credentials, sdk, sign_result

    if merkle_kb is not None:
        sdk.MERKLE_CHUNK_KB = merkle_kb

    dest = result.with_name(f"{result.stem}-signed.mp4")

    def sign() -> None:
        sign_result(result, dest, original=original, original_title="Sora video", edited_by="SWC")

    # A worker that has been up a while: c2pa's library loaded, the keys checked (a trial
    # signing of a tiny picture). Growth is counted from there, so the first signing of this
    # video counts too.
    from apps.provenance import check_signing_keys

    check_signing_keys()
    baseline, peak = rss(), Peak()
    with peak:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            sign()
            times.append(time.perf_counter() - started)
        started = time.perf_counter()
        read_credentials(dest)
        read_seconds = time.perf_counter() - started
    figures: dict[str, object] = {
        "size": result.stat().st_size,
        "added": dest.stat().st_size - result.stat().st_size,
        "sign_seconds": times,
        "read_seconds": read_seconds,
        "peak_growth": peak.value - baseline,
        "peak": peak.value,
    }
    if compare:
        from tests.provenance.helpers import decoded_content

        before, after = decoded_content(result), decoded_content(dest)
        figures["frames"] = len(after.frames)
        figures["identical"] = before == after
    print(json.dumps(figures))


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Peak:
    """The highest resident memory seen while the block runs, sampled every 5 ms."""

    def __init__(self) -> None:
        self.value = rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.value = max(self.value, rss())

    def __enter__(self) -> "Peak":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.value = max(self.value, rss())


def time_startup_check() -> float:
    from apps.provenance import check_signing_keys

    started = time.perf_counter()
    check_signing_keys()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
