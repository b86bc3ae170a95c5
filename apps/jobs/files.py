"""Serving what we store for a team (results, originals, posters), to the web pages and the
API alike: from S3 by a short-lived signed link, so the bytes never pass through the web
server; from local disk streamed by the web server, answering byte ranges as S3 does, so a
video player can seek (and two players compared side by side can keep in step)."""

import re
from collections.abc import Iterator
from typing import IO

from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import redirect

from apps.jobs.models import Job
from apps.jobs.uploads import direct_to_bucket


def result_name(job: Job) -> str:
    if not job.has_result:
        raise Http404("This video has no result to download.")
    return str(job.result_file.name)


def serve_stored(
    name: str, filename: str, content_type: str, *, attachment: bool, byte_range: str = ""
) -> HttpResponseBase:
    """The stored file `name`, or the part of it a `Range` header (`byte_range`) asks for."""
    disposition = "attachment" if attachment else "inline"
    if direct_to_bucket():
        url = default_storage.url(  # type: ignore[call-arg]  # S3Storage takes parameters
            name,
            parameters={
                "ResponseContentDisposition": f'{disposition}; filename="{filename}"',
                "ResponseContentType": content_type,
            },
        )
        return redirect(url)
    wanted = _one_range(byte_range)
    response: HttpResponseBase
    if wanted is None:
        response = FileResponse(
            default_storage.open(name, "rb"),
            as_attachment=attachment,
            filename=filename,
            content_type=content_type,
        )
    else:
        size = default_storage.size(name)
        span = _within(wanted, size)
        if span is None:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        start, end = span
        response = StreamingHttpResponse(
            _read_span(default_storage.open(name, "rb"), start, end - start + 1),
            status=206,
            content_type=content_type,
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
        response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    return response


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK_BYTES = 256 * 1024


def _one_range(header: str) -> tuple[int | None, int | None] | None:
    """The one byte range of a `Range` header as (first, last), either open; None when there
    is none, or several (the whole file is then the answer, as RFC 9110 allows)."""
    found = _RANGE.match(header.strip())
    if found is None or found[1] == found[2] == "":
        return None
    return (int(found[1]) if found[1] else None, int(found[2]) if found[2] else None)


def _within(wanted: tuple[int | None, int | None], size: int) -> tuple[int, int] | None:
    """The range's first and last byte in a file of `size` bytes; None if it has none."""
    first, last = wanted
    if first is None:  # "-500": the last 500 bytes
        if not last or size == 0:
            return None
        return max(0, size - last), size - 1
    if first >= size or (last is not None and last < first):
        return None
    return first, min(size - 1, last if last is not None else size - 1)


def _read_span(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        while length > 0 and (chunk := handle.read(min(CHUNK_BYTES, length))):
            length -= len(chunk)
            yield chunk
    finally:
        handle.close()
