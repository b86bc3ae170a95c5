"""`python -m apps.removal.engine IN OUT`: remove the Sora 2 mark from a video, print the report."""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from . import NoMarkFound, remove_watermark


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.removal.engine")
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args()
    try:
        report = remove_watermark(args.src, args.dst)
    except NoMarkFound as exc:
        print(f"no mark found: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
