"""`python -m apps.removal.engine IN OUT`: remove the Sora 2 mark from a video, print the report.

With `--progress` it speaks to a parent process over its standard output, one line at a time:
`progress <frames done> <frames in all>` as it goes, then `report <JSON>`. SIGTERM stops it at
the next frame (nothing is left behind), and so does losing its parent (its next line finds
the pipe closed). Exit status: 0 done, 2 no mark found, 3 stopped, 1 anything else.
"""

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from . import Cancelled, NoMarkFound, remove_watermark

NO_MARK, STOPPED = 2, 3
# A parent needs news often enough to know the run is alive, not every frame.
PROGRESS_EVERY_SECONDS = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.removal.engine")
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--progress", action="store_true", help="report progress on stdout")
    args = parser.parse_args()
    asked_to_stop = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal asked_to_stop
        asked_to_stop = True

    signal.signal(signal.SIGTERM, stop)
    last_line = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last_line, asked_to_stop
        finished = done >= total  # the last line always goes: a short video may end within one
        if not args.progress or (
            not finished and time.monotonic() - last_line < PROGRESS_EVERY_SECONDS
        ):
            return
        last_line = time.monotonic()
        try:
            print(f"progress {done} {total}", flush=True)
        except BrokenPipeError:
            asked_to_stop = True  # the parent is gone: nobody waits for this video

    try:
        report = remove_watermark(
            args.src, args.dst, on_progress=progress, should_stop=lambda: asked_to_stop
        )
    except NoMarkFound as exc:
        print(f"no mark found: {exc}", file=sys.stderr)
        return NO_MARK
    except Cancelled:
        return STOPPED
    if args.progress:
        print(f"report {json.dumps(asdict(report))}", flush=True)
    else:
        print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
