"""Tiny generated clips shared by the engine's tests (made once per session, 352x640)."""

from pathlib import Path

import pytest

from .synthetic import ClipSpec, write_clip

MARKED = ClipSpec("marked", 352, 640, 3.0, "astronaut", speed=2.0, segment_seconds=1.5, seed=1)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ClipSpec, Path]]:
    root = tmp_path_factory.mktemp("engine-clips")
    specs = {
        "marked": MARKED,
        "unmarked": ClipSpec("unmarked", 352, 640, 1.5, "astronaut", marked=False, seed=3),
        "rotated": ClipSpec(
            "rotated", 352, 640, 1.0, "coffee", rotation=90, segment_seconds=5, seed=4
        ),
        "vfr": ClipSpec("vfr", 352, 640, 1.0, "rocket", vfr=True, segment_seconds=5, seed=6),
        "odd-silent": ClipSpec(
            "odd-silent", 353, 641, 1.0, "chelsea", audio=False, segment_seconds=5, seed=5
        ),
    }
    return {name: (spec, write_clip(spec, root / f"{name}.mp4")) for name, spec in specs.items()}
