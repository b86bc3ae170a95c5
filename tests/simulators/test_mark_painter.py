"""What both simulators make of an upload (`mark_painter`): the marks painted over, and the
original's sound kept, as SoraWatermarkCleaner merges it back."""

from fractions import Fraction
from pathlib import Path

import av

from apps.simulators.mark_painter import paint_over_marks
from tests.clips import frame_image, make_clip


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def streams(path: Path) -> list[tuple[str, str]]:
    with av.open(str(path)) as container:
        return [(stream.type, stream.codec_context.name) for stream in container.streams]


def test_a_cleaned_clip_keeps_the_originals_sound_packet_for_packet(tmp_path):
    original = make_clip(tmp_path / "beach.mp4", seconds=2, audio=True)

    frames = paint_over_marks(original, tmp_path / "clean.mp4")

    assert frames == 24
    assert streams(tmp_path / "clean.mp4") == [("video", "h264"), ("audio", "aac")]
    # Remuxed, not encoded again: the very same AAC packets, every one of them.
    sound = audio_packets(original)
    assert len(sound) > 50
    assert audio_packets(tmp_path / "clean.mp4") == sound


def test_a_clip_without_sound_stays_without(tmp_path):
    original = make_clip(tmp_path / "silent.mp4", seconds=1)

    paint_over_marks(original, tmp_path / "clean.mp4")

    assert streams(tmp_path / "clean.mp4") == [("video", "h264")]


def test_sound_an_mp4_cannot_carry_is_encoded_again_as_aac(tmp_path):
    # A MOV with PCM sound (as some cameras write): an MP4 takes no PCM, so it becomes AAC.
    original = tmp_path / "camera.mov"
    with av.open(str(original), "w", format="mov") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 144, 256, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=44100)
        sound.layout = "stereo"
        for index in range(12):
            image = frame_image(index, 144, 256, 12, mark=True)
            out.mux(video.encode(av.VideoFrame.from_image(image)))
        out.mux(video.encode())
        for start in range(0, 44100, 1024):
            frame = av.AudioFrame(format="s16", layout="stereo", samples=1024)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            out.mux(sound.encode(frame))
        out.mux(sound.encode())

    paint_over_marks(original, tmp_path / "clean.mp4")

    assert streams(tmp_path / "clean.mp4") == [("video", "h264"), ("audio", "aac")]
    assert len(audio_packets(tmp_path / "clean.mp4")) > 30


def test_a_simulated_fault_can_drop_the_sound(tmp_path):
    original = make_clip(tmp_path / "beach.mp4", seconds=1, audio=True)

    paint_over_marks(original, tmp_path / "clean.mp4", keep_sound=False)

    assert audio_packets(tmp_path / "clean.mp4") == []
