"""Speed and memory of the remover engine on long clips.

    .venv/bin/python bench/remover_speed.py [--seconds 10 60] [--corpus DIR]

Makes 704x1280 30 fps marked clips of the given lengths (tests/removal/engine/synthetic.py),
runs the engine on each in a fresh process and prints wall seconds, CPU seconds (user + system,
all threads), x real time and the process's peak RSS. Goals: 10 s of video in <= 10 s wall on
2 cores; peak RSS <= 400 MB and the same for 60 s as for 10 s (memory does not grow with
length). Reports the machine's load average, since wall time on a shared machine depends on it.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from quality import run_provider  # noqa: E402

from tests.removal.engine.synthetic import ClipSpec, write_clip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--corpus", type=Path)
    args = parser.parse_args()
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="unmark-speed-"))
    corpus.mkdir(parents=True, exist_ok=True)
    print(f"{'clip':18} {'wall s':>7} {'cpu s':>7} {'xRT':>6} {'RSS MB':>7} {'load':>5}")
    for seconds in args.seconds:
        spec = ClipSpec(f"speed-{seconds:g}s", 704, 1280, seconds, "astronaut", speed=2.0, seed=11)
        src = corpus / f"{spec.name}.mp4"
        if not src.exists():
            write_clip(spec, src)
        dst = corpus / f"{spec.name}.out.mp4"
        _, wall, rss, cpu = run_provider("engine", src, dst)
        load = os.getloadavg()[0]
        print(
            f"{spec.name:18} {wall:7.2f} {cpu:7.2f} {seconds / wall:6.2f} {rss:7.0f} {load:5.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
