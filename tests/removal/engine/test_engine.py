"""The engine end to end on tiny generated clips: outcomes, not internals."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from apps.removal.engine import Cancelled, NoMarkFound, remove_watermark

from .synthetic import ClipSpec, clean_frame, full_alpha, place_positions

# Measured 30.2 dB inside the mark on this 352x640 clip (the mark at half size, CRF 23); the
# floor sits a few dB under it so a regression fails. The input itself is at 12.5 dB.
PSNR_FLOOR = 27.5


def _video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _psnr_in_mark(spec: ClipSpec, frames: list[np.ndarray]) -> float:
    se = n = 0.0
    for i, out in enumerate(frames):
        alpha = full_alpha(spec, i)
        mark = cv2.dilate((alpha > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        d = out.astype(np.float64) - clean_frame(spec, i).astype(np.float64)
        se += float((d[mark] ** 2).sum())
        n += float(mark.sum() * 3)
    return 10 * np.log10(255.0**2 / (se / n))


@pytest.fixture(scope="module")
def removed(clips, tmp_path_factory):
    spec, src = clips["marked"]
    dst = tmp_path_factory.mktemp("out") / "out.mp4"
    seen: list[tuple[int, int]] = []
    report = remove_watermark(src, dst, on_progress=lambda d, t: seen.append((d, t)))
    return spec, src, dst, report, seen


def test_segments_follow_the_jumping_mark(removed):
    spec, _, _, report, _ = removed
    assert [s.place for s in report.segments] == ["bottom-left", "top-left"]
    assert report.segments[0].start_frame == 0
    assert abs(report.segments[0].stop_frame - 45) <= 2
    assert report.segments[1].stop_frame == spec.frames
    assert report.marked_frames == spec.frames
    for seg in report.segments:
        # Positions agree with the rendition's within a pixel (its shape is not the prior's).
        x, y = place_positions(spec)[seg.place]
        assert abs(seg.x - x) < 1.0
        assert abs(seg.y - y) < 1.0


def test_quality_inside_the_mark_beats_the_floor(removed):
    spec, src, dst, _, _ = removed
    before = _psnr_in_mark(spec, _video_frames(src))
    after = _psnr_in_mark(spec, _video_frames(dst))
    assert after >= PSNR_FLOOR
    assert after > before + 8.0


def test_pixels_away_from_the_mark_are_left_alone(removed):
    spec, src, dst, _, _ = removed
    for i, (a, b) in enumerate(zip(_video_frames(src), _video_frames(dst), strict=True)):
        if i % 10:
            continue
        near = cv2.dilate((full_alpha(spec, i) > 0).astype(np.uint8), np.ones((41, 41))) > 0
        d = (a.astype(np.float64) - b.astype(np.float64))[~near]
        assert 10 * np.log10(255.0**2 / (d**2).mean()) > 38.0


def test_output_keeps_size_rate_timestamps_and_audio_bytes(removed):
    _, src, dst, report, seen = removed
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        va, vb = a.streams.video[0], b.streams.video[0]
        assert (vb.width, vb.height) == (va.width, va.height)
        assert vb.average_rate == va.average_rate
        pts_a = [f.time for f in a.decode(va)]
        pts_b = [f.time for f in b.decode(vb)]
        assert pts_b == pytest.approx(pts_a, abs=1e-3)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        audio_a = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        audio_b = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert audio_a == audio_b
    assert report.had_audio
    assert report.frames == len(pts_a)
    assert seen[-1][0] == seen[-1][1] == 2 * report.frames


def test_rotation_is_kept_and_marks_are_found_as_displayed(clips, tmp_path):
    _, src = clips["rotated"]
    dst = tmp_path / "out.mp4"
    report = remove_watermark(src, dst)
    assert report.rotation == 90
    assert report.segments[0].place == "bottom-left"
    with av.open(str(dst)) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation == 90
        assert (frame.width, frame.height) == (640, 352)


def test_variable_frame_rate_keeps_every_timestamp(clips, tmp_path):
    _, src = clips["vfr"]
    dst = tmp_path / "out.mp4"
    remove_watermark(src, dst)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        pts_a = [f.time for f in a.decode(video=0)]
        pts_b = [f.time for f in b.decode(video=0)]
    steps = {round(y - x, 4) for x, y in itertools.pairwise(pts_a)}
    assert len(steps) == 2  # the clip really is irregular
    assert pts_b == pytest.approx(pts_a, abs=1e-3)


def test_cli_prints_the_report_and_says_when_there_is_no_mark(clips, tmp_path):
    _, marked = clips["rotated"]
    _, unmarked = clips["unmarked"]
    root = Path(__file__).resolve().parents[3]
    cmd = [sys.executable, "-m", "apps.removal.engine"]
    done = subprocess.run(
        [*cmd, str(marked), str(tmp_path / "a.mp4")], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["segments"][0]["place"] == "bottom-left"
    missing = subprocess.run(
        [*cmd, str(unmarked), str(tmp_path / "b.mp4")], cwd=root, capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert not (tmp_path / "b.mp4").exists()


def test_odd_size_without_audio(clips, tmp_path):
    _, src = clips["odd-silent"]
    dst = tmp_path / "out.mp4"
    report = remove_watermark(src, dst)
    assert not report.had_audio
    with av.open(str(dst)) as c:
        assert not c.streams.audio
        assert (c.streams.video[0].width, c.streams.video[0].height) == (353, 641)


def test_unmarked_clip_raises_and_writes_nothing(clips, tmp_path):
    _, src = clips["unmarked"]
    dst = tmp_path / "out.mp4"
    with pytest.raises(NoMarkFound):
        remove_watermark(src, dst)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("after", [5, 120])  # during analysis, during writing
def test_should_stop_cancels_and_leaves_nothing(clips, tmp_path, after):
    _, src = clips["marked"]
    dst = tmp_path / "out.mp4"
    calls = iter(range(10_000))
    with pytest.raises(Cancelled):
        remove_watermark(src, dst, should_stop=lambda: next(calls) >= after)
    assert list(tmp_path.iterdir()) == []
