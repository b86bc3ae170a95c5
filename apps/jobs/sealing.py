"""Giving a cleaned video its Content Credentials before it is stored, whichever provider made
it: a C2PA manifest with the job's original as the parent ingredient (its own credentials kept
inside when it had any), "visible watermark removed" by whom, and still declared AI-made.

While signing is on (`C2PA_SIGNING`), a result that cannot be signed is not delivered: the save
step fails the job, and its credits are released.
"""

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage

from apps.jobs.download import DownloadError
from apps.jobs.models import Job
from apps.jobs.uploads import direct_to_bucket
from apps.provenance import SigningFailed, sign_result
from apps.removal.base import RemovalProvider

# The parent ingredient's title, which every copy of the video shows: neutral, never the
# person's own file name or link.
ORIGINAL_TITLE = "Sora video"

type Seal = Callable[[Path], dict[str, Any] | None]


def seal_for(job: Job, provider: RemovalProvider) -> Seal:
    """What signs this job's downloaded result in place, returning what its credentials say
    (None when signing is switched off). Raises `DownloadError` (code "signing") on failure."""

    def seal(video: Path) -> dict[str, Any] | None:
        with _original(job) as original:
            try:
                credentials = sign_result(
                    video,
                    video,
                    original=original,
                    original_title=ORIGINAL_TITLE,
                    edited_by=provider.software_agent or provider.label,
                )
            except SigningFailed as exc:
                raise DownloadError(
                    f"It could not be given its Content Credentials ({exc.message}).",
                    retryable=False,
                    code="signing",
                ) from exc
        return credentials.as_json() if credentials else None

    return seal


@contextmanager
def _original(job: Job) -> Iterator[Path | None]:
    """The job's original as a local file (only its manifest is read), or None for a link
    job or an original no longer kept. From S3 it is copied to a temporary file first: c2pa
    reads the boxes it needs out of order, which a streamed body cannot do."""
    name = str(job.original_file.name) if job.original_file else ""
    if not name or not default_storage.exists(name):
        yield None
        return
    if not direct_to_bucket():
        yield Path(default_storage.path(name))
        return
    temp_dir = Path(settings.DOWNLOAD_TEMP_DIR)
    temp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=temp_dir, suffix=".original") as copy:
        bucket = default_storage.bucket  # type: ignore[attr-defined]  # S3Storage only
        bucket.download_fileobj(default_storage._normalize_name(name), copy)  # type: ignore[attr-defined]
        copy.flush()
        yield Path(copy.name)
