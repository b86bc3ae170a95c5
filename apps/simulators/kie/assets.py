"""What the simulator serves as results: the sample MP4 that ships with the project, generated
"video" bytes of any size, and the pages of broken result links and proxies."""

import random
import time
from collections.abc import Iterator
from pathlib import Path

SAMPLE_MP4 = Path(__file__).resolve().parent / "assets" / "sample.mp4"
CHUNK_BYTES = 64 * 1024

# Generated "video" data for --result-bytes: one block, repeated, so N bytes cost 64 KiB.
# It opens with an MP4 `ftyp` box, as a real video does, so it passes the app's format check.
_FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
FILLER = _FTYP + random.Random(20260324).randbytes(CHUNK_BYTES - len(_FTYP))  # noqa: S311


def filler(total: int, bytes_per_second: int = 0) -> Iterator[bytes]:
    pause = CHUNK_BYTES / bytes_per_second if bytes_per_second else 0.0
    for offset in range(0, total, CHUNK_BYTES):
        yield FILLER[: min(CHUNK_BYTES, total - offset)]
        if pause:
            time.sleep(pause)


BAD_GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
RESULT_PAGE = b"<!doctype html><html><body><h1>This file has expired</h1></body></html>"
