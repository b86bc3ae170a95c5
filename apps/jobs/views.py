import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.paginator import Page, Paginator
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import ngettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps import plural
from apps.accounts.access import MemberRequest, get_team_owned, team_member_required
from apps.accounts.models import Membership
from apps.billing import ledger
from apps.jobs import queue, routing, services
from apps.jobs.forms import JobFilterForm, SubmitForm
from apps.jobs.limits import MonthlyLimitReached, limit_left
from apps.jobs.links import LineError
from apps.jobs.media import MediaRefused
from apps.jobs.models import (
    InputKind,
    Job,
    JobQuerySet,
    JobsPulse,
    Upload,
)
from apps.jobs.providers import NoProvider, accepts, get_provider
from apps.jobs.providers.base import CallbackRejected, ProviderError
from apps.jobs.uploads import (
    HashedUploadedFile,
    LinkRefused,
    Refusal,
    direct_to_bucket,
    discard,
    display_name,
    job_for_original_link,
    presigned_post,
    request_refusals,
    stage_received_file,
    stage_stored_object,
)

logger = logging.getLogger("unmark.jobs")

JOBS_PER_PAGE = 20
NO_CHANGE = 204  # htmx leaves the page alone on 204: the cheap answer of a live refresh
FROZEN_MESSAGE = "New videos are paused for this team because of a payment dispute."
NO_FILES_MESSAGE = (
    "Cleaning uploaded files is not available right now: no removal service that takes files "
    "is set up. Nothing was charged."
)
UPLOAD_GONE_MESSAGE = (
    "Some of the files uploaded for this form were already submitted or removed. "
    "Nothing was submitted: please check the list below and upload them again if needed."
)
ANNOUNCE_AT_MOST = 5  # a screen reader reads every word: name a few videos, not a whole batch
# Callbacks about one job within this many seconds make one status query (Kie may repeat them).
CALLBACK_WINDOW_SECONDS = 5
# Replicate's signed webhook ids are remembered this long: longer than the 5 minutes either side
# of now in which Standard Webhooks accepts a timestamp, so a replay is always caught.
WEBHOOK_ID_MEMORY_SECONDS = 11 * 60


# --- Dashboard ---------------------------------------------------------------------------------
@team_member_required
@require_GET
def dashboard(request: MemberRequest) -> HttpResponse:
    return _dashboard(request, _submit_form(request), Outcome())


@dataclass
class Outcome:
    """What became of one submission, item by item, for the form to show."""

    created: int = 0
    line_errors: list[LineError] = field(default_factory=list)
    duplicates: list[LineError] = field(default_factory=list)
    refused_files: list[Refusal] = field(default_factory=list)
    already: list[services.AlreadyCleaned] = field(default_factory=list)
    # Files received and checked but not submitted (yet): the form carries them on.
    ready: list[Upload] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.line_errors or self.refused_files or self.already or self.ready)


def _submit_form(request: MemberRequest, **kwargs: Any) -> SubmitForm:
    confirmed = request.user.ownership_confirmed_at is not None
    return SubmitForm(ownership_confirmed=confirmed, **kwargs)


@team_member_required
@require_POST
def submit(request: MemberRequest) -> HttpResponse:
    form = _submit_form(request, data=request.POST, files=request.FILES)
    outcome = Outcome(refused_files=[r for r in request_refusals(request) if r.name])
    if whole_batch := [r.message for r in request_refusals(request) if not r.name]:
        form.is_valid()
        form.add_error(None, whole_batch[0])
    elif form.is_valid():
        _submit_valid(request, form, outcome)
    if outcome.created and not outcome.needs_attention and not request.htmx:
        count = outcome.created
        notes = " ".join(f"Line {line.number}: {line.message}" for line in outcome.duplicates)
        messages.success(request, f"{plural.videos(count)} added. {notes}".strip())
        return redirect(request.membership.team)
    if outcome.created:
        # Keep only the lines that need fixing in the box; the rest of the form starts afresh.
        form = _submit_form(
            request, initial={"links": "\n".join(error.text for error in outcome.line_errors)}
        )
    return _dashboard(request, form, outcome)


def _submit_valid(request: MemberRequest, form: SubmitForm, outcome: Outcome) -> None:
    membership = request.membership
    if form.cleaned_data.get("owns_videos"):
        request.user.confirm_ownership()
    outcome.line_errors = form.paste.errors
    outcome.duplicates = form.paste.duplicates
    submission = form.cleaned_data["submission"]
    if made := services.jobs_of_submission(team=membership.team, submission=submission):
        # Told before any file of a resent form is received again or checked.
        form.add_error(None, _already_sent_message(len(made)))
        return
    ids = form.cleaned_data["uploads"]
    found = Upload.objects.filter(team=membership.team, public_id__in=ids).in_bulk(
        field_name="public_id"
    )
    # In the order the person chose them, which the jobs keep.
    uploads = [found[public_id] for public_id in dict.fromkeys(ids) if public_id in found]
    if len(uploads) != len(set(ids)):
        form.add_error(None, UPLOAD_GONE_MESSAGE)
        return
    if form.cleaned_data["videos"]:
        if not accepts(InputKind.FILE):
            form.add_error(None, NO_FILES_MESSAGE)
            return
        for received in form.cleaned_data["videos"]:
            try:
                uploads.append(stage_received_file(membership=membership, uploaded=received))
            except MediaRefused as exc:
                outcome.refused_files.append(Refusal(display_name(received.name), exc.message))
    uploads = _drop_repeated_files(uploads, outcome)
    links = form.paste.links
    if not form.cleaned_data["again"]:
        links, uploads, outcome.already = services.split_already_cleaned(
            team=membership.team, links=links, uploads=uploads
        )
    set_aside = {item.key for item in outcome.already}
    outcome.ready = [upload for upload in uploads if upload.sha256 in set_aside]
    if not links and not uploads:
        return
    try:
        created = services.submit_jobs(
            membership=membership, links=links, uploads=uploads, submission=submission
        )
        outcome.created = len(created)
    except services.AlreadySubmitted as exc:
        form.add_error(None, _already_sent_message(len(exc.jobs)))
    except ledger.InsufficientCredits as exc:
        form.add_error(None, missing_credits_message(exc, len(links) + len(uploads)))
    except ledger.TeamFrozen:
        form.add_error(None, FROZEN_MESSAGE)
    except (MonthlyLimitReached, services.ProviderBusy) as exc:
        form.add_error(None, str(exc))
    except NoProvider as exc:
        form.add_error(None, f"{exc} Nothing was charged.")
    except services.UploadGone:
        form.add_error(None, UPLOAD_GONE_MESSAGE)
    finally:
        if not outcome.created:
            # The checked files wait in the form, so nobody has to upload them again.
            outcome.ready += [upload for upload in uploads if upload not in outcome.ready]


def _drop_repeated_files(uploads: list[Upload], outcome: Outcome) -> list[Upload]:
    """The same file twice in one batch is cleaned (and charged) once."""
    first_of: dict[str, Upload] = {}
    for upload in uploads:
        if earlier := first_of.get(upload.sha256):
            outcome.refused_files.append(
                Refusal(upload.name, f"The same video as {earlier.name}: it is cleaned once.")
            )
            discard(upload)
        else:
            first_of[upload.sha256] = upload
    return list(first_of.values())


def _already_sent_message(videos: int) -> str:
    return ngettext(
        "This video was already added when this form was first sent; nothing was charged "
        "again. It is at the top of the list below.",
        "These %(count)d videos were already added when this form was first sent; nothing "
        "was charged again. They are at the top of the list below.",
        videos,
    ) % {"count": videos}


def missing_credits_message(exc: ledger.InsufficientCredits, videos: int) -> str:
    need = ngettext(
        "%(videos)s needs %(needed)s, but your team has %(available)s available:",
        "%(videos)s need %(needed)s, but your team has %(available)s available:",
        videos,
    ) % {
        "videos": plural.videos(videos),
        "needed": plural.credits(exc.needed),
        "available": plural.credits(max(exc.available, 0)),
    }
    missing = ngettext(
        "%(missing)s more credit is needed.", "%(missing)s more credits are needed.", exc.missing
    ) % {"missing": f"{exc.missing:,}"}
    return f"{need} {missing} Nothing was submitted."


# --- Uploads, one file at a time (the page's script; the form works without it) -------------
@team_member_required
@require_POST
def upload(request: MemberRequest) -> JsonResponse:
    """Receives one file through our server (local storage), checks it and keeps it ready."""
    if refusal := _refuse_uploads():
        return refusal
    if refused := request_refusals(request):
        return JsonResponse({"error": refused[0].message}, status=400)
    received = request.FILES.get("file")
    if not isinstance(received, HashedUploadedFile):
        return JsonResponse({"error": "Choose a video file to upload."}, status=400)
    try:
        staged = stage_received_file(membership=request.membership, uploaded=received)
    except MediaRefused as exc:
        return JsonResponse({"error": exc.message}, status=400)
    return _upload_json(staged)


@team_member_required
@require_POST
def upload_presign(request: MemberRequest) -> JsonResponse:
    """With S3 storage: where the browser may POST one file straight into the bucket."""
    if not direct_to_bucket():
        raise Http404
    if refusal := _refuse_uploads():
        return refusal
    return JsonResponse(presigned_post(team=request.membership.team))


@team_member_required
@require_POST
def upload_confirm(request: MemberRequest) -> JsonResponse:
    """With S3 storage: checks the object the browser put in the bucket before accepting it."""
    if not direct_to_bucket():
        raise Http404
    if refusal := _refuse_uploads():
        return refusal
    try:
        staged = stage_stored_object(
            membership=request.membership,
            ticket=request.POST.get("ticket", ""),
            name=request.POST.get("name", ""),
        )
    except MediaRefused as exc:
        return JsonResponse({"error": exc.message}, status=400)
    return _upload_json(staged)


@team_member_required
@require_POST
def upload_discard(request: MemberRequest, public_id: str) -> HttpResponse:
    """Removes a file from the batch before it is submitted."""
    discard(get_team_owned(request, Upload.objects.all(), public_id=public_id))
    return HttpResponse(status=204)


def _refuse_uploads() -> JsonResponse | None:
    if accepts(InputKind.FILE):
        return None
    return JsonResponse({"error": NO_FILES_MESSAGE}, status=409)


def _upload_json(staged: Upload) -> JsonResponse:
    discard_url = reverse(
        "jobs:upload_discard",
        kwargs={"team_id": staged.team.public_id, "public_id": staged.public_id},
    )
    return JsonResponse({**staged.as_json(), "discard_url": discard_url}, status=201)


def _dashboard(request: MemberRequest, form: SubmitForm, outcome: Outcome) -> HttpResponse:
    context = {
        "team": request.membership.team,
        "form": form,
        "outcome": outcome,
        "duplicates": outcome.duplicates,
        "max_links": settings.MAX_LINKS_PER_SUBMIT,
        "max_files": settings.UPLOAD_MAX_FILES,
        "max_upload_bytes": settings.UPLOAD_MAX_BYTES,
        "max_upload_seconds": settings.UPLOAD_MAX_SECONDS,
        "files_accepted": accepts(InputKind.FILE),
        "direct_to_bucket": direct_to_bucket(),
        "credits_per_video": settings.CREDITS_PER_VIDEO,
        "again_submission": uuid.uuid4(),
        "outages": routing.outages(),
        **_jobs_table_context(request),
        **_credit_context(request),
    }
    if request.htmx:
        # The form is swapped in place; the table, flash messages and balance follow out of band.
        context["oob"] = True
        return TemplateResponse(request, "jobs/dashboard.html#submit_response", context)
    return TemplateResponse(request, "jobs/dashboard.html", context)


def _credit_context(request: MemberRequest) -> dict[str, object]:
    membership = request.membership
    return {
        "limit_left": limit_left(membership=membership),
        "can_buy": membership.can_buy_credits,
    }


# --- Jobs table (with its live refresh) --------------------------------------------------------
@team_member_required
@require_GET
def jobs_table(request: MemberRequest) -> HttpResponse:
    team = request.membership.team
    pulse = Job.objects.filter(team=team).pulse()
    since = request.GET.get("since", "")
    if since == pulse.fingerprint:
        return HttpResponse(status=NO_CHANGE)
    context = {
        **_jobs_table_context(request, pulse),
        **_credit_context(request),
        "finished": _finished_since(Job.objects.filter(team=team), since),
    }
    return TemplateResponse(request, "jobs/dashboard.html#table_refresh", context)


def _finished_since(jobs: JobQuerySet, fingerprint: str) -> list[Job]:
    """Jobs that ended after the page's last look (its fingerprint holds the latest change),
    for the screen reader announcement. None on a first look: there was nothing to compare."""
    since = JobsPulse.latest_in(fingerprint)
    if since is None:
        return []
    moment = datetime.fromtimestamp(since, tz=UTC)
    return list(jobs.filter(finished_at__gt=moment).order_by("finished_at")[:ANNOUNCE_AT_MOST])


def _jobs_table_context(
    request: MemberRequest, pulse: JobsPulse | None = None
) -> dict[str, object]:
    team = request.membership.team
    members = list(
        Membership.objects.filter(team=team)
        .select_related("user")
        .order_by("user__email")
        .values_list("user_id", "user__email")
    )
    filters = JobFilterForm(request.GET, members=members)
    filters.is_valid()  # invalid values are shown as errors and ignored
    jobs: JobQuerySet = Job.objects.filter(team=team)
    pulse = pulse or jobs.pulse()
    if state := filters.cleaned_data.get("state"):
        jobs = jobs.filter(state=state)
    if by := filters.cleaned_data.get("by"):
        jobs = jobs.filter(created_by_id=by)
    page: Page[Job] = Paginator(jobs.select_related("created_by", "team"), JOBS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return {
        "team": team,
        "filters": filters,
        "page": page,
        "fingerprint": pulse.fingerprint,
        "live": pulse.active > 0,
    }


# --- One job ---------------------------------------------------------------------------------
def _get_job(request: MemberRequest, public_id: object) -> Job:
    return get_team_owned(
        request, Job.objects.select_related("created_by", "team"), public_id=public_id
    )


@team_member_required
@require_GET
def job_detail(request: MemberRequest, public_id: str) -> HttpResponse:
    job = _get_job(request, public_id)
    if request.htmx:
        if request.GET.get("since") == _job_fingerprint(job):
            return HttpResponse(status=NO_CHANGE)
        template = "jobs/job_detail.html#status_refresh"
    else:
        template = "jobs/job_detail.html"
    return TemplateResponse(
        request,
        template,
        {
            "job": job,
            "events": job.events.all(),
            "fingerprint": _job_fingerprint(job),
            # Only about its own kind of input, and only while it has not ended.
            "outages": routing.outages([InputKind(job.input_kind)]) if job.is_in_flight else [],
            "processed_by": routing.processed_by(job),
            "retry": None if job.is_in_flight else job.retries.first(),
            "original_retention_hours": settings.ORIGINAL_RETENTION_HOURS,
        },
    )


def _job_fingerprint(job: Job) -> str:
    # The progress is part of it: an estimate moves on while the job itself does not change.
    return f"{job.state}-{job.updated_at.timestamp():.6f}-{job.progress}"


@team_member_required
@require_POST
def retry(request: MemberRequest, public_id: str) -> HttpResponse:
    job = _get_job(request, public_id)
    try:
        new_job = services.retry_job(membership=request.membership, job=job)
    except services.AlreadyRetried as exc:
        messages.info(request, f"{exc} Here is how that went.")
        return redirect(exc.retry)
    except services.NotRetryable as exc:
        messages.error(request, str(exc))
        return redirect(job)
    except ledger.InsufficientCredits as exc:
        messages.error(request, missing_credits_message(exc, 1))
        return redirect(job)
    except ledger.TeamFrozen:
        messages.error(request, FROZEN_MESSAGE)
        return redirect(job)
    except (MonthlyLimitReached, services.ProviderBusy) as exc:
        messages.error(request, str(exc))
        return redirect(job)
    messages.success(request, "Trying again as a new job. Credits are held until it finishes.")
    return redirect(new_job)


@team_member_required
@require_POST
def cancel(request: MemberRequest, public_id: str) -> HttpResponse:
    job = _get_job(request, public_id)
    if job.cancel():
        messages.success(request, "Canceled. Its credits are available again.")
    else:
        job.refresh_from_db()
        messages.error(request, job.why_not_cancelable or "This video has already finished.")
    return redirect(job)


@team_member_required
@require_GET
def download(request: MemberRequest, public_id: str) -> HttpResponseBase:
    job = _get_job(request, public_id)
    return serve_stored(result_name(job), job.download_name, "video/mp4", attachment=True)


@team_member_required
@require_GET
def preview(request: MemberRequest, public_id: str) -> HttpResponseBase:
    job = _get_job(request, public_id)
    return serve_stored(result_name(job), job.download_name, "video/mp4", attachment=False)


@team_member_required
@require_GET
def original(request: MemberRequest, public_id: str) -> HttpResponseBase:
    """The uploaded original, while it is kept: the "before" of the comparison."""
    job = _get_job(request, public_id)
    if not job.original_file:
        raise Http404("The original of this video is no longer kept.")
    return serve_stored(str(job.original_file.name), "original.mp4", "video/mp4", attachment=False)


@team_member_required
@require_GET
def poster(request: MemberRequest, public_id: str, which: str) -> HttpResponseBase:
    job = _get_job(request, public_id)
    stored = {"original": job.original_poster, "result": job.result_poster}.get(which)
    if not stored:
        raise Http404("No poster.")
    return serve_stored(str(stored.name), f"{which}.jpg", "image/jpeg", attachment=False)


def result_name(job: Job) -> str:
    if not job.has_result:
        raise Http404("This video has no result to download.")
    return str(job.result_file.name)


def serve_stored(
    name: str, filename: str, content_type: str, *, attachment: bool
) -> HttpResponseBase:
    disposition = "attachment" if attachment else "inline"
    if direct_to_bucket():
        # S3: a short-lived signed link, so the bytes never pass through the web server.
        url = default_storage.url(  # type: ignore[call-arg]  # S3Storage takes parameters
            name,
            parameters={
                "ResponseContentDisposition": f'{disposition}; filename="{filename}"',
                "ResponseContentType": content_type,
            },
        )
        return redirect(url)
    response = FileResponse(
        default_storage.open(name, "rb"),
        as_attachment=attachment,
        filename=filename,
        content_type=content_type,
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response


# --- Kie's callback ------------------------------------------------------------------------------
@csrf_exempt  # Kie cannot send a CSRF token; the per-job secret in the URL stands in for it.
@require_POST
def kie_callback(request: HttpRequest, token: str) -> HttpResponse:
    job = Job.objects.filter(callback_token=token).first()
    if job is None:
        raise Http404
    try:
        task_id = get_provider(job.provider).verify_callback(request.headers, request.body)
    except CallbackRejected as exc:
        logger.warning("callback rejected", extra={"job": job.public_id, "reason": str(exc)})
        return JsonResponse({"code": 400, "msg": "rejected"}, status=400)
    if job.task_id and task_id != job.task_id:
        logger.warning("callback for another task", extra={"job": job.public_id})
        return JsonResponse({"code": 400, "msg": "task mismatch"}, status=400)
    # The body is never trusted: the callback only makes us ask Kie for the task's status
    # (once for a burst of callbacks), or, for a job whose start got no answer, whether the
    # task it names is the one that start created.
    if job.is_in_flight and job.note_callback(window_seconds=CALLBACK_WINDOW_SECONDS):
        queue.check_after_callback(job.pk, task_id=task_id)
    return HttpResponse(
        json.dumps({"code": 200, "msg": "success"}), content_type="application/json"
    )


# --- Replicate's webhooks ----------------------------------------------------------------------
@csrf_exempt  # signed the Standard Webhooks way; the per-job secret in the URL names the job.
@require_POST
def replicate_callback(request: HttpRequest, token: str) -> HttpResponse:
    job = Job.objects.filter(callback_token=token, provider="replicate").first()
    if job is None:
        raise Http404
    try:
        task_id = get_provider(job.provider).verify_callback(request.headers, request.body)
    except CallbackRejected as exc:
        logger.warning("webhook rejected", extra={"job": job.public_id, "reason": str(exc)})
        return JsonResponse({"detail": "rejected"}, status=400)
    except ProviderError as exc:
        # The signing secret could not be fetched: Replicate sends the webhook again later.
        logger.warning("webhook not checked", extra={"job": job.public_id, "error": str(exc)})
        return JsonResponse({"detail": "try again later"}, status=503)
    if job.task_id and task_id != job.task_id:
        logger.warning("webhook for another prediction", extra={"job": job.public_id})
        return JsonResponse({"detail": "prediction mismatch"}, status=400)
    # A signed webhook seen before is a replay (or a retry of one already acted on): refused.
    # Only verified ids are remembered, so forged requests cannot block real ones.
    webhook_id = hashlib.sha256(request.headers["webhook-id"].encode()).hexdigest()
    if not cache.add(f"hooks:replicate:{webhook_id}", True, timeout=WEBHOOK_ID_MEMORY_SECONDS):
        logger.warning("webhook replayed", extra={"job": job.public_id})
        return JsonResponse({"detail": "already received"}, status=409)
    # The body is never trusted: each webhook only makes us ask Replicate for the prediction.
    # Not coalesced like Kie's: "completed" often follows "start" within a second or two.
    if job.is_in_flight:
        queue.check_after_callback(job.pk, task_id=task_id)
    return JsonResponse({"detail": "received"})


# --- The original, for a provider that fetches it ----------------------------------------------
@require_GET
def original_link(request: HttpRequest, token: str) -> HttpResponseBase:
    """A job's original by a short-lived signed link (`uploads.original_link`), without
    signing in: how Replicate fetches it from local disk. Bad or expired links get 404."""
    try:
        job = job_for_original_link(token)
    except LinkRefused as exc:
        raise Http404(str(exc)) from None
    response = FileResponse(
        default_storage.open(str(job.original_file.name), "rb"), content_type="video/mp4"
    )
    response["Cache-Control"] = "no-store"
    return response
