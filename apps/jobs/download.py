"""Copying a finished video from the provider's result URL into our storage, safely.

The URL comes from a third party, so it is treated as hostile: https only, never to private,
loopback or link-local addresses (but for the first request of a client the provider trusts:
its own configured machine, or its local simulator), connecting to exactly the
address that was checked (no second lookup a rebinding DNS could answer differently: the
vetting is shared with outgoing webhooks in `apps.outbound`), redirects
checked hop by hop, a size cap, and the bytes must look like an MP4. The video is streamed
through a temporary file — never held in memory — where it is given its Content Credentials
(`seal`) and its size and SHA-256 are measured; it reaches storage only once complete and
signed, so a crash leaves no partial result behind. Every failure,
network and storage ones included, comes out as a `DownloadError` that says whether trying
again can help.
"""

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import httpx
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps import outbound
from apps.jobs.media import has_sound, poster_jpeg
from apps.outbound import Refusal

CHUNK_BYTES = 1024 * 1024
# The slowest storage write we plan for, to size the lease while a finished file is saved.
SLOWEST_SAVE_BYTES_PER_SECOND = 2 * 1024 * 1024
# And the slowest signing (measured: 490 MB in 6-13 s on a busy 2-core machine).
SLOWEST_SIGNING_BYTES_PER_SECOND = 10 * 1024 * 1024
MAX_REDIRECTS = 3
HEARTBEAT_SECONDS = 5.0
TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=10.0, pool=10.0)
ACCEPTED_CONTENT_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")


class DownloadError(Exception):
    """`gone`: the result no longer exists where it was (404/410). `code` names the failure
    for the job ("download", or "signing" when it could not be given its credentials)."""

    def __init__(
        self, message: str, *, retryable: bool, gone: bool = False, code: str = "download"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.gone = gone
        self.code = code


class ResultRefused(DownloadError):
    """The result arrived whole but is not what was asked for (it lost the original's sound):
    nothing was stored. `code` names what is wrong with it."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, retryable=False, code=code)


@dataclass(frozen=True)
class StoredResult:
    name: str
    size: int
    sha256: str
    poster: str = ""  # a JPEG frame of the result, when one could be decoded
    # What the result's Content Credentials say, as `seal` returned it.
    credentials: dict[str, Any] | None = None


class _LocalTempFile(File):
    """Lets FileSystemStorage move the finished file into place instead of copying it."""

    def temporary_file_path(self) -> str:
        return str(getattr(self.file, "name", ""))


def store_result(
    url: str,
    *,
    storage_name: str,
    temp_name: str,
    heartbeat: Callable[[float], None],
    seal: Callable[[Path], dict[str, Any] | None],
    trusted_client: httpx.Client | None = None,
    kept: IO[bytes] | None = None,
    must_have_sound: bool = False,
) -> StoredResult:
    """Downloads `url` into storage as `storage_name` (or a free variant of it).

    With `must_have_sound` (the original had sound), a result without any is refused
    (`ResultRefused`) before anything is stored: its probe reads the downloaded file from
    disk, never whole into memory.

    `heartbeat(seconds)` is called as work goes on, with how long the next quiet stretch
    may last, so the caller can keep its lease on the job alive. `seal(path)` gives the
    downloaded video its Content Credentials in place before it is stored, and returns what
    they say (it raises `DownloadError` when it cannot). `trusted_client` fetches a URL on a
    server the operator configured (an SWC server, often on a private network, with its
    `Authorization` header): the first request skips the address checks; any redirect from it
    is checked like every other link. `kept` is a result a provider of ours already keeps in
    our storage: it is copied from there (with the same checks) instead of downloaded.
    """
    temp_dir = Path(settings.DOWNLOAD_TEMP_DIR)
    temp_path = temp_dir / temp_name
    try:
        temp_dir.mkdir(parents=True, exist_ok=True)
        if kept is not None:
            with kept:
                size = _write_chunks(
                    iter(lambda: kept.read(CHUNK_BYTES), b""), temp_path, heartbeat
                )
        else:
            size = _download_to(url, temp_path, heartbeat, trusted_client)
        if must_have_sound and not has_sound(temp_path):
            raise ResultRefused(
                "The clean video came back without the sound the original has.", code="no_audio"
            )
        heartbeat(size / SLOWEST_SIGNING_BYTES_PER_SECOND)
        credentials = seal(temp_path)
        # The signed file is the one delivered: its size and digest are what people get.
        size = temp_path.stat().st_size
        with temp_path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        # Saving sends no heartbeat of its own (an upload to S3 can take a while).
        heartbeat(size / SLOWEST_SAVE_BYTES_PER_SECOND)
        poster = _save_poster(temp_path, storage_name)
        with temp_path.open("rb") as handle:
            saved_name = default_storage.save(storage_name, _LocalTempFile(handle))
        return StoredResult(
            name=saved_name, size=size, sha256=digest, poster=poster, credentials=credentials
        )
    except (httpx.HTTPError, OSError, UnicodeError) as exc:
        # Connection drops, timeouts, full disks, storage outages: all worth another try.
        raise DownloadError(
            f"The download was interrupted ({type(exc).__name__}).", retryable=True
        ) from exc
    finally:
        temp_path.unlink(missing_ok=True)


def _save_poster(video: Path, storage_name: str) -> str:
    frame = poster_jpeg(video)
    if frame is None:
        return ""
    return default_storage.save(f"{storage_name.rsplit('.', 1)[0]}.jpg", ContentFile(frame))


def _download_to(
    url: str, path: Path, heartbeat: Callable[[float], None], trusted: httpx.Client | None
) -> int:
    limit = settings.RESULT_MAX_BYTES
    client = trusted or _http_client()
    for _ in range(MAX_REDIRECTS + 1):
        # A configured server is fetched as named; any other address only once vetted, pinned.
        target, headers, extensions = (
            outbound.pinned(url, None)
            if client is trusted
            else outbound.pinned(url, check_fetchable(url))
        )
        with client.stream(
            "GET", target, headers={"Accept": "video/mp4,*/*", **headers}, extensions=extensions
        ) as response:
            if response.is_redirect:
                url = urljoin(url, response.headers.get("location", ""))
                client = _http_client()  # the trust was in the configured server, not beyond
                continue
            _check_response(response, limit)
            return _write_chunks(response.iter_bytes(CHUNK_BYTES), path, heartbeat)
    raise DownloadError("The result link redirected too many times.", retryable=False)


_clients: dict[int, httpx.Client] = {}


def _http_client() -> httpx.Client:
    """One pooled client per process: building one loads the CA bundle, which costs more
    CPU than a small download. Keyed by pid, since forked workers must not share sockets."""
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        _clients[pid] = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    return _clients[pid]


def _check_response(response: httpx.Response, limit: int) -> None:
    status = response.status_code
    if status in (404, 410):
        raise DownloadError("The result link no longer exists.", retryable=False, gone=True)
    if status == 429 or status >= 500:
        raise DownloadError(f"The result server answered {status}.", retryable=True)
    if status != 200:
        raise DownloadError(f"The result server refused the download ({status}).", retryable=False)
    content_type = response.headers.get("content-type", "").lower()
    if content_type and not content_type.startswith(ACCEPTED_CONTENT_TYPES):
        kind = content_type.split(";")[0]
        raise DownloadError(f"The result link served {kind}, not a video.", retryable=False)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise DownloadError(_too_large(limit), retryable=False)


def _write_chunks(chunks: Iterable[bytes], path: Path, heartbeat: Callable[[float], None]) -> int:
    limit = settings.RESULT_MAX_BYTES
    size = 0
    last_beat = time.monotonic()
    with path.open("wb") as out:
        for chunk in chunks:
            if size == 0 and not looks_like_mp4(chunk):
                raise DownloadError("The result is not an MP4 video.", retryable=False)
            size += len(chunk)
            if size > limit:
                raise DownloadError(_too_large(limit), retryable=False)
            out.write(chunk)
            if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                heartbeat(0)
                last_beat = time.monotonic()
        out.flush()
        os.fsync(out.fileno())
    if size == 0:
        raise DownloadError("The result was empty.", retryable=True)
    return size


def looks_like_mp4(first_bytes: bytes) -> bool:
    """ISO media files (MP4, MOV) start with a box whose type is `ftyp` at offset 4."""
    return len(first_bytes) >= 8 and first_bytes[4:8] == b"ftyp"


def check_fetchable(url: str) -> str:
    """Refuses URLs that could reach into our own network (SSRF); returns the vetted address
    to connect to."""
    try:
        return outbound.vet(url)
    except outbound.AddressRefused as refused:
        raise DownloadError(
            _REFUSALS[refused.refusal], retryable=refused.refusal == Refusal.UNRESOLVED
        ) from None


_REFUSALS = {
    Refusal.MALFORMED: "The result link is malformed.",
    Refusal.NOT_HTTPS: "The result link is not an https address.",
    Refusal.PRIVATE: "The result link points into a private network.",
    Refusal.UNRESOLVED: "The result server could not be found.",
}


def _too_large(limit: int) -> str:
    return f"The result is larger than the {limit // (1024 * 1024)} MB we accept."
