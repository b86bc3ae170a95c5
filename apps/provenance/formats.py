"""Which media type c2pa should treat a video as, told from its first bytes.

c2pa-python guesses the type from a path's extension, but the pipeline's files are temporary
names (`….part`) and people's originals may be MP4 or QuickTime whatever they are called. Both
are ISO base media files (an `ftyp` box first), which c2pa signs the same way; the brand only
picks the name c2pa gets. Anything else is not a video we deliver.
"""

from pathlib import Path
from typing import IO

MP4 = "video/mp4"
QUICKTIME = "video/quicktime"


def video_media_type(source: Path | IO[bytes]) -> str | None:
    """`video/mp4` or `video/quicktime` for an ISO base media file, else None.

    A stream is read from where it stands and put back there.
    """
    if isinstance(source, Path):
        with source.open("rb") as handle:
            head = handle.read(12)
    else:
        position = source.tell()
        head = source.read(12)
        source.seek(position)
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    return QUICKTIME if head[8:12] == b"qt  " else MP4
