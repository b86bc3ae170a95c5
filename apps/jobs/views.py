import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
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
from django.utils.translation import ngettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps import plural
from apps.accounts.access import MemberRequest, get_team_owned, team_member_required
from apps.accounts.models import Membership
from apps.billing import ledger
from apps.jobs import queue, services
from apps.jobs.forms import JobFilterForm, SubmitLinksForm
from apps.jobs.limits import MonthlyLimitReached, limit_left
from apps.jobs.links import LineError
from apps.jobs.models import Job, JobQuerySet, JobsPulse, ProviderAlert
from apps.jobs.providers import get_provider
from apps.jobs.providers.base import CallbackRejected

logger = logging.getLogger("unmark.jobs")

JOBS_PER_PAGE = 20
NO_CHANGE = 204  # htmx leaves the page alone on 204: the cheap answer of a live refresh
FROZEN_MESSAGE = "New videos are paused for this team because of a payment dispute."
ANNOUNCE_AT_MOST = 5  # a screen reader reads every word: name a few videos, not a whole batch
# Callbacks about one job within this many seconds make one status query (Kie may repeat them).
CALLBACK_WINDOW_SECONDS = 5


# --- Dashboard ---------------------------------------------------------------------------------
@team_member_required
@require_GET
def dashboard(request: MemberRequest) -> HttpResponse:
    return _dashboard(request, _paste_form(request))


def _paste_form(request: MemberRequest, **kwargs: Any) -> SubmitLinksForm:
    confirmed = request.user.ownership_confirmed_at is not None
    return SubmitLinksForm(ownership_confirmed=confirmed, **kwargs)


@team_member_required
@require_POST
def submit(request: MemberRequest) -> HttpResponse:
    form = _paste_form(request, data=request.POST)
    line_errors: list[LineError] = []
    duplicates: list[LineError] = []
    created: list[Job] = []
    if form.is_valid():
        if form.cleaned_data.get("owns_videos"):
            request.user.confirm_ownership()
        paste = form.paste
        line_errors = paste.errors
        duplicates = paste.duplicates
        if paste.links:
            try:
                created = services.submit_links(
                    membership=request.membership,
                    links=paste.links,
                    submission_id=form.cleaned_data["submission"],
                )
            except services.AlreadySubmitted as exc:
                form.add_error(None, _already_sent_message(len(exc.jobs)))
            except ledger.InsufficientCredits as exc:
                form.add_error(None, _missing_credits_message(exc, len(paste.links)))
            except ledger.TeamFrozen:
                form.add_error(None, FROZEN_MESSAGE)
            except (MonthlyLimitReached, services.ProviderBusy) as exc:
                form.add_error(None, str(exc))
    if created and not line_errors and not request.htmx:
        notes = " ".join(f"Line {line.number}: {line.message}" for line in duplicates)
        messages.success(request, f"{plural.videos(len(created))} added. {notes}".strip())
        return redirect(request.membership.team)
    if created:
        # Keep only the lines that need fixing in the box; the rest of the form starts afresh.
        form = _paste_form(
            request, initial={"links": "\n".join(error.text for error in line_errors)}
        )
    return _dashboard(
        request,
        form,
        line_errors=line_errors,
        duplicates=duplicates,
        just_created=len(created),
    )


def _already_sent_message(videos: int) -> str:
    return ngettext(
        "This video was already added when this form was first sent; nothing was charged "
        "again. It is at the top of the list below.",
        "These %(count)d videos were already added when this form was first sent; nothing "
        "was charged again. They are at the top of the list below.",
        videos,
    ) % {"count": videos}


def _missing_credits_message(exc: ledger.InsufficientCredits, videos: int) -> str:
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


def _dashboard(
    request: MemberRequest,
    form: SubmitLinksForm,
    *,
    line_errors: list[LineError] | None = None,
    duplicates: list[LineError] | None = None,
    just_created: int = 0,
) -> HttpResponse:
    context = {
        "team": request.membership.team,
        "form": form,
        "line_errors": line_errors or [],
        "duplicates": duplicates or [],
        "just_created": just_created,
        "max_links": settings.MAX_LINKS_PER_SUBMIT,
        "credits_per_video": settings.CREDITS_PER_VIDEO,
        "provider_alert": _open_provider_alert(),
        **_jobs_table_context(request),
        **_credit_context(request),
    }
    if request.htmx:
        # The form is swapped in place; the table, flash messages and balance follow out of band.
        context["oob"] = True
        return TemplateResponse(request, "jobs/dashboard.html#submit_response", context)
    return TemplateResponse(request, "jobs/dashboard.html", context)


def _open_provider_alert() -> ProviderAlert | None:
    return ProviderAlert.objects.filter(resolved_at__isnull=True).order_by("-last_seen_at").first()


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
            "provider_alert": _open_provider_alert() if job.is_in_flight else None,
            "retry": None if job.is_in_flight else job.retries.first(),
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
        messages.error(request, _missing_credits_message(exc, 1))
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
    return _serve_result(_get_job(request, public_id), attachment=True)


@team_member_required
@require_GET
def preview(request: MemberRequest, public_id: str) -> HttpResponseBase:
    return _serve_result(_get_job(request, public_id), attachment=False)


def _serve_result(job: Job, *, attachment: bool) -> HttpResponseBase:
    if not job.has_result:
        raise Http404("This video has no result to download.")
    name = str(job.result_file.name)
    disposition = "attachment" if attachment else "inline"
    if hasattr(default_storage, "bucket_name"):
        # S3: a short-lived signed link, so the bytes never pass through the web server.
        url = default_storage.url(  # type: ignore[call-arg]  # S3Storage takes parameters
            name,
            parameters={
                "ResponseContentDisposition": f'{disposition}; filename="{job.download_name}"',
                "ResponseContentType": "video/mp4",
            },
        )
        return redirect(url)
    response = FileResponse(
        default_storage.open(name, "rb"),
        as_attachment=attachment,
        filename=job.download_name,
        content_type="video/mp4",
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
