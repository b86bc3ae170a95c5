"""Helpers for upload tests: real clips (tests/clips.py) and hostile files made from them by
byte surgery, and posting them the way a browser without JavaScript does."""

import io
import uuid
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

import av
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.accounts.models import Membership, User
from tests.clips import make_clip


def clip_bytes(tmp_path: Path, name: str = "clip.mp4", **options: object) -> bytes:
    return make_clip(tmp_path / f"{uuid.uuid4().hex}-{name}", **options).read_bytes()  # type: ignore[arg-type]


def faststart_clip_bytes(tmp_path: Path) -> bytes:
    """A clip with its index (moov) before the frames, as streaming exports are."""
    source = make_clip(tmp_path / "slow.mp4", seconds=2)
    target = tmp_path / "fast.mp4"
    with (
        av.open(str(source)) as inp,
        av.open(str(target), "w", format="mp4", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target.read_bytes()


def audio_only_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=44100)
        for start in range(0, 44100, 1024):
            frame = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            out.mux(sound.encode(frame))
        out.mux(sound.encode())
    return path.read_bytes()


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "orange").save(out, "PNG")
    return out.getvalue()


def video_file(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="video/mp4")


def post_videos(client: Client, user: User, files: list[tuple[str, bytes]], **fields: object):
    """Sends the dashboard's form of `user`'s personal team with these files."""
    data: dict[str, object] = {
        "videos": [video_file(name, content) for name, content in files],
        "owns_videos": "on",
        "submission": str(uuid.uuid4()),
        **fields,
    }
    return client.post(at(user, "jobs:submit"), data)


def at(user: User, name: str, *args: object) -> str:
    """The URL of a page of `user`'s personal team."""
    team = Membership.objects.get(user=user, team__is_personal=True).team
    return reverse(name, args=[team.public_id, *args])


class PageForms(HTMLParser):
    """The forms of a page as a browser would send them: each one's action and the hidden
    fields it carries (what the person cannot change), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, list[tuple[str, str]]]] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "form":
            self.forms.append((names.get("action") or "", []))
            self._open = True
        elif tag == "input" and self._open and names.get("type") == "hidden" and names.get("name"):
            self.forms[-1][1].append((str(names["name"]), names.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = False


def form_carrying(html: str, field: str, *, lacking: str = "") -> tuple[str, dict[str, list[str]]]:
    """The first form of the page with a hidden `field` (and not `lacking`): its action and
    its hidden fields."""
    parser = PageForms()
    parser.feed(html)
    for action, fields in parser.forms:
        names = {name for name, _ in fields}
        if field in names and lacking not in names:
            data: dict[str, list[str]] = {}
            for name, value in fields:
                data.setdefault(name, []).append(value)
            return action, data
    raise AssertionError(f"no form carries {field!r}")
