"""The operations of /api/v1/. Each acts for the key's team only, through the same services the
web uses (`submit_jobs`, `Job.cancel`, the upload staging, the ledger's rows), with the same
messages; a key never sees another team's things (404, as if they did not exist)."""

import base64
import binascii
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.validators import ProhibitNullCharactersValidator
from django.db.models import F, Q
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from ninja import File, Form, Query, Router, Status
from ninja.files import UploadedFile

from apps.api import schemas
from apps.api.guard import count_request, guard
from apps.api.keys import Principal, principal_for_key
from apps.api.problems import Problem, not_found
from apps.billing.models import LedgerEntry, Wallet
from apps.jobs import lifecycle, submission
from apps.jobs.files import result_name, serve_stored
from apps.jobs.links import check_share_link
from apps.jobs.media import MediaRefused
from apps.jobs.models import Job, Upload
from apps.jobs.public import JOB_SHAPE_FIELDS, job_shape
from apps.jobs.uploads import (
    HashedUploadedFile,
    direct_to_bucket,
    discard,
    presigned_post,
    stage_received_file,
    stage_stored_object,
)
from apps.refusals import Refused

router = Router()
router.add_decorator(guard, mode="view")  # around the whole operation, auth included

ERRORS = frozenset({400, 401, 402, 403, 404, 409, 413, 422, 429, 503})
DEFAULT_PAGE = 50
MAX_PAGE = 100


def _principal(request: HttpRequest) -> Principal:
    principal: Principal = request.auth  # type: ignore[attr-defined]  # set by ApiKeyAuth
    return principal


# --- Jobs --------------------------------------------------------------------------------------
def job_detail_out(request: HttpRequest, job: Job) -> dict[str, Any]:
    return {
        **job_shape(job),
        "result": _result(request, job),
        "timeline": [
            {
                "at": event.created_at,
                "from_state": event.from_state or None,
                "to_state": event.to_state,
                "detail": event.detail,
            }
            for event in job.events.all()
        ],
    }


def _result_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt="unmark.api.result")


def _result(request: HttpRequest, job: Job) -> dict[str, Any] | None:
    """A short-lived link anyone holding it may download from: it names the job, signed."""
    if not job.has_result:
        return None
    token = _result_signer().sign(str(job.public_id))
    return {
        "url": request.build_absolute_uri(reverse("api:result", kwargs={"token": token})),
        "url_expires_at": timezone.now() + timedelta(seconds=settings.API_RESULT_URL_SECONDS),
        "filename": job.download_name,
        "size": job.result_size,
        "sha256": job.result_sha256,
        "deleted_at": job.expires_at,
    }


def _team_jobs(principal: Principal) -> Any:
    return (
        Job.objects.filter(team_id=principal.team_id)
        .select_related("created_by")
        .only(*JOB_SHAPE_FIELDS)
        .annotate(retry_of_public_id=F("retry_of__public_id"))
    )


def _get_job(principal: Principal, job_id: UUID) -> Job:
    return get_object_or_404(_team_jobs(principal), public_id=job_id)


@router.post(
    "/jobs",
    response={200: schemas.CreatedOut, 201: schemas.CreatedOut, ERRORS: schemas.ProblemOut},
    summary="Create jobs from links or uploaded files",
    url_name="create_jobs",
)
def create_jobs(request: HttpRequest, body: schemas.JobsIn) -> Status[dict[str, Any]]:
    """One job per Sora share link and per uploaded file (see `POST /uploads`), holding 10
    credits each, all or nothing. Any item that cannot be used refuses the whole request
    (`invalid-items`, with a message per item); nothing is created or charged then."""
    principal = _principal(request)
    errors: list[dict[str, str]] = []
    duplicates: list[dict[str, str]] = []
    links: dict[str, str] = {}  # link → its item
    for index, text in enumerate(body.links):
        item = f"links[{index}]"
        # The web form's own field refuses these before the link is read, with this message.
        if "\x00" in text:
            errors.append({"item": item, "message": str(ProhibitNullCharactersValidator.message)})
            continue
        link, problem = check_share_link(text.strip())
        if problem:
            errors.append({"item": item, "message": problem})
        elif link in links:
            duplicates.append(
                {"item": item, "message": f"The same video as {links[link]}: it is sent once."}
            )
        else:
            links[link] = item
    found = Upload.objects.filter(team_id=principal.team_id, public_id__in=body.uploads).in_bulk(
        field_name="public_id"
    )
    uploads: list[tuple[str, Upload]] = []
    for index, upload_id in enumerate(body.uploads):
        item = f"uploads[{index}]"
        if upload_id not in found:
            errors.append(
                {"item": item, "message": "This upload does not exist or was already submitted."}
            )
        else:
            uploads.append((item, found[upload_id]))
    if errors:
        raise _invalid_items(errors)
    item_of = {upload.pk: item for item, upload in reversed(uploads)}
    kept, repeats = submission.drop_repeated_files([upload for _, upload in uploads])
    duplicates += [{"item": uploads[r.index][0], "message": r.message} for r in repeats]
    uploads = [(item_of[upload.pk], upload) for upload in kept]
    return _submit(principal, links=links, uploads=uploads, again=body.again, duplicates=duplicates)


@router.post(
    "/jobs/files",
    response={200: schemas.CreatedOut, 201: schemas.CreatedOut, ERRORS: schemas.ProblemOut},
    summary="Create jobs from small video files (multipart)",
    url_name="create_jobs_from_files",
)
def create_jobs_from_files(
    request: HttpRequest,
    files: File[list[UploadedFile]],
    again: Form[bool] = False,
) -> Status[dict[str, Any]]:
    """Sends the files in this request (multipart/form-data, field `files`, up to
    `UPLOAD_MAX_FILES`, each streamed to disk and checked) and creates their jobs at once.
    For large files use `POST /uploads`. A refused file refuses the whole request; one
    over the size cap, or one file too many, stops it while it arrives (413)."""
    principal = _principal(request)
    _require_files_accepted()
    staged: list[tuple[str, Upload]] = []
    errors: list[dict[str, str]] = []
    for index, received in enumerate(files):
        item = f"files[{index}]"
        if not isinstance(received, HashedUploadedFile):
            errors.append({"item": item, "message": "This is not a file."})
            continue
        try:
            staged.append(
                (item, stage_received_file(membership=principal.membership, uploaded=received))
            )
        except MediaRefused as exc:
            errors.append({"item": item, "message": f"{received.name}: {exc.message}"})
    try:
        if errors:
            raise _invalid_items(errors)
        item_of = {upload.pk: item for item, upload in staged}
        kept, repeats = submission.drop_repeated_files([upload for _, upload in staged])
        duplicates = [{"item": staged[r.index][0], "message": r.message} for r in repeats]
        staged = [(item_of[upload.pk], upload) for upload in kept]
        return _submit(principal, links={}, uploads=staged, again=again, duplicates=duplicates)
    except Problem:
        # Nothing is kept for a refused request.
        for _, upload in staged:
            if Upload.objects.filter(pk=upload.pk).exists():
                discard(upload)
        raise


def _invalid_items(errors: list[dict[str, str]]) -> Problem:
    return Problem(
        422,
        "invalid-items",
        "Some items cannot be processed",
        "Nothing was created or charged. Fix the items listed in errors and send the request "
        "again.",
        errors=errors,
    )


def _submit(
    principal: Principal,
    *,
    links: dict[str, str],
    uploads: Sequence[tuple[str, Upload]],
    again: bool,
    duplicates: list[dict[str, str]],
) -> Status[dict[str, Any]]:
    """Holds and creates, all or nothing, answering refusals as the dashboard words them."""
    team = principal.membership.team
    item_of = dict(links) | {upload.sha256: item for item, upload in uploads}
    new_links, new_uploads = list(links), [upload for _, upload in uploads]
    already: list[submission.AlreadyCleaned] = []
    if not again:
        new_links, new_uploads, already = submission.split_already_cleaned(
            team=team, links=new_links, uploads=new_uploads
        )
    upload_of = {upload.sha256: upload for _, upload in uploads}
    answer: dict[str, Any] = {
        "jobs": [],
        "already_cleaned": [
            {
                "item": item_of[aside.key],
                "job": aside.job.public_id,
                "upload": upload_of[aside.key].public_id if aside.key in upload_of else None,
            }
            for aside in already
        ],
        "duplicates": duplicates,
    }
    if not new_links and not new_uploads:
        if not already:
            raise _invalid_items(
                [{"item": "request", "message": "Send video files, or Sora share links."}]
            )
        return Status(200, answer)
    try:
        jobs = submission.submit_jobs(
            membership=principal.membership, links=new_links, uploads=new_uploads
        )
    except Refused as exc:
        raise Problem.refused(exc) from None
    for job in jobs:
        job.created_by = principal.membership.user
    answer["jobs"] = [job_shape(job) for job in jobs]
    return Status(201, answer)


@router.get(
    "/jobs",
    response={200: schemas.JobPage, ERRORS: schemas.ProblemOut},
    summary="List the team's jobs, newest first",
    url_name="list_jobs",
)
def list_jobs(
    request: HttpRequest,
    state: schemas.State | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    member: str | None = Query(
        None,
        description="Email of the person who made the jobs.",
        max_length=254,
        pattern=r"^[^\x00-\x1f]*$",
    ),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
    limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE),
) -> dict[str, Any]:
    jobs = _team_jobs(_principal(request))
    if state:
        jobs = jobs.filter(state=state)
    if created_after:
        jobs = jobs.filter(created_at__gte=_utc(created_after))
    if created_before:
        jobs = jobs.filter(created_at__lt=_utc(created_before))
    if member:
        jobs = jobs.filter(created_by__email__iexact=member)
    page, next_cursor = _page(jobs.order_by("-created_at", "-id"), cursor, limit)
    return {"data": [job_shape(job) for job in page], "next_cursor": next_cursor}


def _utc(moment: datetime) -> datetime:
    """The moment in UTC (a time without an offset is read as UTC, the API's time zone):
    the database takes offsets up to ±15:59 only, ISO 8601 up to ±23:59."""
    try:
        return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    except OverflowError:  # an offset that moves it before year 1 or after 9999
        raise Problem(400, "invalid-date", "Invalid date", "This date is out of range.") from None


def _page(rows: Any, cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
    """Keyset pagination on (created_at, id), newest first: as fast on page 200 as on page 1,
    and nothing is skipped or repeated while new rows arrive."""
    if cursor:
        created_at, pk = _read_cursor(cursor)
        rows = rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
    page = list(rows[: limit + 1])
    if len(page) <= limit:
        return page, None
    last = page[limit - 1]
    raw = f"{last.created_at.isoformat()}|{last.pk}".encode()
    return page[:limit], base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, pk = raw.split("|")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError(cursor)
        if not 0 < int(pk) < 2**63:  # a row id the database can compare with
            raise ValueError(cursor)
        return _utc(moment), int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(
            400, "invalid-cursor", "Invalid cursor", "Use the next_cursor of a previous page."
        ) from None


@router.get(
    "/jobs/{job_id}",
    response={200: schemas.JobDetailOut, ERRORS: schemas.ProblemOut},
    summary="One job: its state, progress, credits, timeline and result link",
    url_name="job",
)
def get_job(request: HttpRequest, job_id: UUID) -> dict[str, Any]:
    return job_detail_out(request, _get_job(_principal(request), job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    response={200: schemas.JobDetailOut, ERRORS: schemas.ProblemOut},
    summary="Cancel a job that has not reached the removal service yet",
    url_name="cancel_job",
)
def cancel_job(request: HttpRequest, job_id: UUID) -> dict[str, Any]:
    job = _get_job(_principal(request), job_id)
    if not lifecycle.cancel_job(job):
        job.refresh_from_db()
        raise Problem(
            409,
            "not-cancelable",
            "Cannot be canceled",
            job.why_not_cancelable or "This video has already finished.",
        )
    return job_detail_out(request, job)


@router.get("/results/{token}", auth=None, include_in_schema=False, url_name="result")
def result(request: HttpRequest, token: str) -> HttpResponseBase:
    """The signed link of `result.url`: the clean video (or, with S3, a redirect to it)."""
    try:
        public_id = _result_signer().unsign(token, max_age=settings.API_RESULT_URL_SECONDS)
    except signing.BadSignature:
        raise not_found("This download link has expired or is not valid.") from None
    job = get_object_or_404(Job, public_id=public_id)
    return serve_stored(result_name(job), job.download_name, "video/mp4", attachment=True)


# --- Uploads of large files -----------------------------------------------------------------------
def _upload_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt="unmark.api.upload")


def _require_files_accepted() -> None:
    """Every way in for a file refuses it while no removal service takes files, as the
    dashboard's upload views do, with the same message."""
    try:
        submission.require_files_accepted()
    except Refused as exc:
        raise Problem.refused(exc) from None


@router.post(
    "/uploads",
    response={201: schemas.UploadTicketOut, ERRORS: schemas.ProblemOut},
    summary="Ask where to upload a large file",
    url_name="upload_ticket",
)
def upload_ticket(request: HttpRequest) -> Status[dict[str, Any]]:
    """Step 1 of 3 for large files: where to POST one file (straight to the storage bucket
    when the service uses S3). Step 2: POST it there as multipart/form-data, `fields` first,
    the file in `file_field`; its answer, or `confirm_url` when given, holds the upload's
    `id`. Step 3: `POST /jobs` with `{"uploads": [id]}`."""
    principal = _principal(request)
    _require_files_accepted()
    if direct_to_bucket():
        post = presigned_post(team=principal.membership.team)
        url, fields, ticket = str(post["url"]), dict(post["fields"]), str(post["ticket"])  # type: ignore[call-overload]
        confirm: str | None = request.build_absolute_uri(reverse("api:confirm_upload"))
    else:
        # The nonce makes the ticket good for one file (see `_use_ticket`).
        ticket = _upload_signer().sign(f"{principal.key.pk}:{secrets.token_urlsafe(16)}")
        url = request.build_absolute_uri(reverse("api:receive_upload"))
        fields, confirm = {"ticket": ticket}, None
    return Status(
        201,
        {
            "method": "POST",
            "url": url,
            "fields": fields,
            "file_field": "file",
            "confirm_url": confirm,
            "ticket": ticket,
            "expires_in": settings.UPLOAD_PRESIGN_SECONDS,
        },
    )


@router.post(
    "/uploads/receive",
    auth=None,
    response={201: schemas.UploadOut, ERRORS: schemas.ProblemOut},
    summary="Step 2 without S3: receive one file on an upload ticket",
    url_name="receive_upload",
)
def receive_upload(
    request: HttpRequest, ticket: Form[str], file: File[UploadedFile]
) -> Status[dict[str, Any]]:
    """Streams the file to disk (never into memory) and checks it; the ticket stands in for
    the API key, like a presigned POST to a bucket: it counts against the key's rate limit,
    and it is good for one file."""
    try:
        key_id, nonce = (
            _upload_signer().unsign(ticket, max_age=settings.UPLOAD_PRESIGN_SECONDS).split(":")
        )
        principal = principal_for_key(int(key_id))
    except (signing.BadSignature, ValueError):
        principal = None
    if principal is None or principal.key.read_only:
        raise Problem(
            403,
            "invalid-ticket",
            "Upload ticket not valid",
            "This upload ticket has expired or is not valid. Ask for a new one.",
        )
    count_request(principal)
    _require_files_accepted()
    if not isinstance(file, HashedUploadedFile):
        raise _invalid_items([{"item": "file", "message": "This is not a file."}])
    used = f"api:upload-ticket:{nonce}"
    # Taken before the file is kept, atomically (Redis, or the database's unique key), so two
    # requests racing with one ticket keep one file at most.
    if not cache.add(used, True, timeout=settings.UPLOAD_PRESIGN_SECONDS + 60):
        raise Problem(
            409,
            "ticket-used",
            "Upload ticket already used",
            "This upload ticket was already used for a file. Ask for a new one for each file.",
        )
    try:
        staged = stage_received_file(membership=principal.membership, uploaded=file)
    except MediaRefused as exc:
        cache.delete(used)  # nothing was kept: the ticket may carry a better file
        raise _invalid_items([{"item": "file", "message": exc.message}]) from None
    return Status(201, staged.as_json())


@router.post(
    "/uploads/confirm",
    response={201: schemas.UploadOut, ERRORS: schemas.ProblemOut},
    summary="Step 2b with S3: check the file uploaded to the bucket",
    url_name="confirm_upload",
)
def confirm_upload(request: HttpRequest, body: schemas.ConfirmIn) -> Status[dict[str, Any]]:
    if not direct_to_bucket():
        raise not_found("Uploads answer with their id themselves here; nothing to confirm.")
    _require_files_accepted()
    principal = _principal(request)
    try:
        staged = stage_stored_object(
            membership=principal.membership, ticket=body.ticket, name=body.name
        )
    except MediaRefused as exc:
        raise _invalid_items([{"item": "file", "message": exc.message}]) from None
    return Status(201, staged.as_json())


# --- Credits -------------------------------------------------------------------------------------
@router.get(
    "/balance",
    response={200: schemas.BalanceOut, ERRORS: schemas.ProblemOut},
    summary="The team's credits: available and reserved",
    url_name="balance",
)
def balance(request: HttpRequest) -> dict[str, Any]:
    wallet = Wallet.objects.filter(team_id=_principal(request).team_id).first()
    return {
        "available": wallet.available if wallet else 0,
        "reserved": wallet.held if wallet else 0,
        "balance": wallet.balance if wallet else 0,
        "frozen": wallet.is_frozen if wallet else False,
        "credits_per_video": settings.CREDITS_PER_VIDEO,
    }


@router.get(
    "/credits",
    response={200: schemas.CreditPage, ERRORS: schemas.ProblemOut},
    summary="The team's credit history, newest first (every ledger entry)",
    url_name="credits",
)
def credit_history(
    request: HttpRequest,
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
    limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE),
) -> dict[str, Any]:
    entries = (
        LedgerEntry.objects.filter(team_id=_principal(request).team_id)
        .select_related("job", "topup")
        .order_by("-created_at", "-id")
    )
    page, next_cursor = _page(entries, cursor, limit)
    return {
        "data": [
            {
                "created_at": entry.created_at,
                "kind": entry.kind,
                "amount": entry.amount,
                "available_change": entry.available_change,
                "memo": entry.memo,
                "job": entry.job.public_id if entry.job else None,
                "top_up": entry.topup.public_id if entry.topup else None,
            }
            for entry in page
        ],
        "next_cursor": next_cursor,
    }
