"""Receiving video files: streamed to disk with a size cap, judged by content, staged.

Bytes arrive either through our web server (streamed to a temporary file by
`CappedUploadHandler`, which stops storing a file the moment it passes `UPLOAD_MAX_BYTES`) or,
with S3 storage, straight from the browser into the bucket on a presigned POST that carries
the same cap; then `stage_stored_object` reads the object back through a temporary file.
Either way the file is probed with PyAV before anything is kept, and people's file names are
only ever shown, never used in a storage path.
"""

import hashlib
import re
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Membership, Team
from apps.jobs.media import MediaRefused, Probed, probe_video
from apps.jobs.models import FINAL_STATES, Job, Upload
from apps.sizes import file_size

CHUNK_BYTES = 1024 * 1024
NAME_MAX_CHARACTERS = 120
# Multipart headers and boundaries around the files of one request.
REQUEST_OVERHEAD_BYTES = 1024 * 1024
ORIGINAL_LINK_SALT = "jobs.original-link"


@dataclass(frozen=True)
class Refusal:
    """A file that was not accepted, with the reason to show next to its name. Without a
    name, the whole batch was refused while it arrived."""

    name: str
    message: str


def display_name(raw: str) -> str:
    """A file name fit for showing: no folders, control or direction-changing characters,
    not too long. It is never used to build a storage path."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    # Cc: control characters; Cf: format characters such as RTL overrides and zero-width joiners.
    name = "".join(c for c in name if unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Co"})
    name = " ".join(name.split()).strip(" .")
    if len(name) > NAME_MAX_CHARACTERS:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 8:
            name = f"{stem[: NAME_MAX_CHARACTERS - len(extension) - 2]}….{extension}"
        else:
            name = f"{name[: NAME_MAX_CHARACTERS - 1]}…"
    return name or "video"


def upload_prefix(team: Team) -> str:
    """Every stored upload of a team lives under this prefix (and presigned keys must too)."""
    return f"uploads/{team.public_id}/"


def new_storage_name(team: Team) -> str:
    return f"{upload_prefix(team)}{uuid.uuid4().hex}.mp4"


class HashedUploadedFile(TemporaryUploadedFile):
    """A temporary upload that knows its SHA-256, computed while it was written."""

    sha256: str = ""


def request_refusals(request: HttpRequest) -> list[Refusal]:
    """Files the upload handler refused while they arrived (too large, too many)."""
    refusals: list[Refusal] = getattr(request, "upload_refusals", [])
    return refusals


class CappedUploadHandler(TemporaryFileUploadHandler):
    """Streams each file to a temporary file (never into memory), hashing it on the way.

    The moment a file passes `UPLOAD_MAX_BYTES` the request stops being read: nothing more is
    received or stored, and the batch is refused with that file named. So is a batch of more
    than `UPLOAD_MAX_FILES` files, when the one too many begins, and a request whose declared
    length is over a whole batch of the largest files, before anything is read.
    """

    chunk_size = CHUNK_BYTES

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.files_seen = 0
        self.too_large = False
        self.received = 0
        self.digest = hashlib.sha256()
        self.refusals: list[Refusal] = []
        if request is not None:
            request.upload_refusals = self.refusals  # type: ignore[attr-defined]

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],  # Django's parameter name
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        limit = settings.UPLOAD_MAX_BYTES * settings.UPLOAD_MAX_FILES + REQUEST_OVERHEAD_BYTES
        # Refused when its first file begins: the form's fields before it (the CSRF token
        # among them) are still read, so the person gets an answer rather than a 403.
        self.too_large = content_length > limit

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        self.files_seen += 1
        if self.too_large:
            self.refusals.append(Refusal("", _batch_too_large_message()))
            raise StopUpload(connection_reset=True)
        if self.files_seen > settings.UPLOAD_MAX_FILES:
            self.refusals.append(Refusal("", too_many_files_message()))
            raise StopUpload(connection_reset=True)
        # The base handler's bookkeeping, but our own temporary file class.
        super(TemporaryFileUploadHandler, self).new_file(field_name, file_name, *args, **kwargs)
        self.file = HashedUploadedFile(
            self.file_name or "", self.content_type, 0, self.charset, self.content_type_extra
        )
        self.received = 0
        self.digest = hashlib.sha256()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > settings.UPLOAD_MAX_BYTES:
            name = display_name(self.file_name or "")
            self.refusals.append(Refusal("", f"{name}: {too_large_message()} {STOPPED}"))
            raise StopUpload(connection_reset=True)  # Django closes (so deletes) the file
        self.digest.update(raw_data)
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> UploadedFile | None:
        uploaded = super().file_complete(file_size)
        if isinstance(uploaded, HashedUploadedFile):
            uploaded.sha256 = self.digest.hexdigest()
        return uploaded


STOPPED = (
    "The upload was stopped there and nothing was submitted: remove that file and send the "
    "others again."
)


def too_large_message() -> str:
    return f"This file is larger than the {file_size(settings.UPLOAD_MAX_BYTES)} we accept."


def too_many_files_message() -> str:
    return (
        f"Up to {settings.UPLOAD_MAX_FILES} files can be sent at once, and these are more. "
        "Nothing was submitted: please send them in smaller batches."
    )


def _batch_too_large_message() -> str:
    files, size = settings.UPLOAD_MAX_FILES, file_size(settings.UPLOAD_MAX_BYTES)
    return (
        f"These files are larger together than a whole batch may be (up to {files} files of "
        f"{size} each). "
        "Nothing was received: please send them in smaller batches."
    )


# --- Staging ----------------------------------------------------------------------------------
def stage_received_file(*, membership: Membership, uploaded: HashedUploadedFile) -> Upload:
    """Probes a file our web server received and keeps it as the team's upload.

    Raises `MediaRefused`; then nothing is kept (the temporary file goes with the request).
    """
    path = Path(uploaded.temporary_file_path())
    probed = probe_video(path)
    stored = _noted(default_storage.save(new_storage_name(membership.team), uploaded))
    return _record(
        membership=membership,
        stored=stored,
        name=uploaded.name or "",
        size=uploaded.size or 0,
        sha256=uploaded.sha256,
        media_info=probed.info.as_json(),
        poster=probed.poster,
    )


def stage_stored_object(*, membership: Membership, ticket: str, name: str) -> Upload:
    """Checks an object the browser put straight into the bucket, then keeps it as an upload.

    `ticket` is the signed key `presigned_post` handed out for this team, still fresh: no other
    object can be claimed. The object is read back through a temporary file to measure, hash
    and probe it; a refused object is deleted. Raises `MediaRefused`.
    """
    try:
        key = _ticket_signer().unsign(ticket, max_age=settings.UPLOAD_PRESIGN_SECONDS * 2)
    except signing.BadSignature:
        raise MediaRefused(
            "This upload took too long or was not ours. Please send it again."
        ) from None
    if not key.startswith(upload_prefix(membership.team)):
        raise MediaRefused("This upload does not belong to your team.")
    if Upload.objects.filter(file=key).exists() or Job.objects.filter(original_file=key).exists():
        raise MediaRefused("This upload was already received.")
    try:
        size, sha256, probed = _check_stored_object(key)
    except MediaRefused:
        default_storage.delete(key)
        raise
    return _record(
        membership=membership,
        stored=key,
        name=name,
        size=size,
        sha256=sha256,
        media_info=probed.info.as_json(),
        poster=probed.poster,
    )


def _ticket_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt="unmark.uploads.presigned")


def _check_stored_object(key: str) -> tuple[int, str, Probed]:
    bucket = default_storage.bucket  # type: ignore[attr-defined]  # S3Storage only
    try:
        size = bucket.Object(key).content_length
    except ClientError:
        raise MediaRefused("The file did not arrive. Please upload it again.") from None
    if size > settings.UPLOAD_MAX_BYTES:
        raise MediaRefused(too_large_message())
    temp_dir = Path(settings.DOWNLOAD_TEMP_DIR)
    temp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=temp_dir, suffix=".upload") as temp:
        # boto3 streams the object to disk in parts (storage's own `open` would spool it
        # into memory).
        bucket.download_fileobj(key, temp)
        temp.flush()
        temp.seek(0)
        digest = hashlib.file_digest(temp, "sha256")
        return size, digest.hexdigest(), probe_video(Path(temp.name))


def presigned_post(*, team: Team) -> dict[str, object]:
    """Where and how the browser may POST one file straight into the bucket: under this team's
    prefix, at most `UPLOAD_MAX_BYTES`, for a short while."""
    key = new_storage_name(team)
    client = default_storage.connection.meta.client  # type: ignore[attr-defined]
    post: dict[str, object] = client.generate_presigned_post(
        Bucket=default_storage.bucket_name,  # type: ignore[attr-defined]
        Key=key,
        Fields={"Content-Type": "video/mp4"},
        Conditions=[
            ["content-length-range", 1, settings.UPLOAD_MAX_BYTES],
            {"Content-Type": "video/mp4"},
        ],
        ExpiresIn=settings.UPLOAD_PRESIGN_SECONDS,
    )
    # The page hands the ticket back once the bucket has the file: only keys we issued can
    # be claimed, and only for a while.
    return {"url": post["url"], "fields": post["fields"], "ticket": _ticket_signer().sign(key)}


class LinkRefused(Exception):
    """A link to an original that is forged, expired, or whose job no longer needs it."""


def original_link(job: Job, *, seconds: int) -> str:
    """A link that opens the job's original without signing in, for `seconds`: how a provider
    that fetches its input (Replicate) gets the file. On S3, the bucket's own presigned URL;
    on local disk (which has no expiring URLs), `views.original_link` with a signed token
    naming the job and the moment the link expires."""
    name = str(job.original_file.name)
    if direct_to_bucket():
        return str(default_storage.url(name, expire=seconds))  # type: ignore[call-arg]
    token = signing.dumps(
        [str(job.public_id), int(time.time()) + seconds], salt=ORIGINAL_LINK_SALT, compress=False
    )
    base = settings.PUBLIC_BASE_URL or settings.SITE_URL
    return base + reverse("jobs:original_link", kwargs={"token": token})


def job_for_original_link(token: str) -> Job:
    """The job whose original `token` opens; LinkRefused when the token is forged, expired,
    or its job has ended (its provider has no more use for the file) or lost its original."""
    try:
        public_id, expires = signing.loads(token, salt=ORIGINAL_LINK_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        raise LinkRefused("the link is not one we signed") from None
    if not isinstance(expires, int) or expires < time.time():
        raise LinkRefused("the link has expired")
    job = Job.objects.filter(public_id=public_id).exclude(original_file="").first()
    if job is None or not job.is_in_flight:
        raise LinkRefused("the video is no longer being cleaned")
    return job


def direct_to_bucket() -> bool:
    """With S3 storage, browsers upload straight to the bucket instead of through us."""
    return hasattr(default_storage, "bucket_name")


def _record(
    *,
    membership: Membership,
    stored: str,
    name: str,
    size: int,
    sha256: str,
    media_info: dict[str, object],
    poster: bytes,
) -> Upload:
    poster_name = _noted(
        default_storage.save(
            f"posters/{membership.team.public_id}/{uuid.uuid4().hex}.jpg", ContentFile(poster)
        )
    )
    return Upload.objects.create(
        team=membership.team,
        created_by=membership.user,
        file=stored,
        name=display_name(name),
        size=size,
        sha256=sha256,
        media_info=media_info,
        poster=poster_name,
    )


# Files stored inside `atomic_with_files`, to delete should its transaction roll back.
_STORED_IN_BLOCK: ContextVar[list[str] | None] = ContextVar("stored_in_block", default=None)


@contextmanager
def atomic_with_files() -> Iterator[None]:
    """A transaction whose stored uploads (files and posters) go if it rolls back (an error,
    or `set_rollback`): a kept file always has the row that refers to it."""
    stored: list[str] = []
    token = _STORED_IN_BLOCK.set(stored)
    try:
        with transaction.atomic():
            yield
            rolled_back = transaction.get_rollback()
    except BaseException:
        _delete_all(stored)
        raise
    finally:
        _STORED_IN_BLOCK.reset(token)
    if rolled_back:
        _delete_all(stored)


def _noted(name: str) -> str:
    if (stored := _STORED_IN_BLOCK.get()) is not None:
        stored.append(name)
    return name


def _delete_all(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)


def discard(upload: Upload) -> None:
    """Deletes an upload that will not be submitted, with its stored files."""
    for name in (upload.file.name, upload.poster.name):
        if name:
            default_storage.delete(name)
    upload.delete()


def expire_originals() -> int:
    """Deletes originals `ORIGINAL_RETENTION_HOURS` after their job ended, and uploads that
    were never submitted after as long. Their posters stay while the job keeps a result."""
    cutoff = timezone.now() - timedelta(hours=settings.ORIGINAL_RETENTION_HOURS)
    deleted = 0
    ended = Job.objects.filter(state__in=FINAL_STATES, finished_at__lte=cutoff).exclude(
        original_file=""
    )
    for job in ended.only("pk", "original_file"):
        name = str(job.original_file.name)
        # The file goes first: if that fails the job still points at it for the next sweep.
        default_storage.delete(name)
        deleted += Job.objects.filter(pk=job.pk, original_file=name).update(original_file="")
    for upload in Upload.objects.filter(created_at__lte=cutoff):
        discard(upload)
        deleted += 1
    return deleted
