"""The job pages people use: the dashboard with its submission form and live table, one job's
page (its progress, its before and after, retry and cancel), and its files.

Submitting goes through `apps.jobs.submission`, as the API does; whatever it refuses is a
`Refused`, shown as a form error in its own words.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from apps import plural
from apps.accounts.access import MemberRequest, get_team_owned, team_member_required
from apps.accounts.models import Membership
from apps.accounts.usage import limit_left
from apps.jobs import lifecycle, submission
from apps.jobs.files import result_name, serve_stored
from apps.jobs.forms import JobFilterForm, SubmitForm
from apps.jobs.links import LineError
from apps.jobs.models import Job, JobQuerySet, JobsPulse, Upload, folded_timeline
from apps.jobs.uploads import (
    Refusal,
    direct_to_bucket,
    discard,
    display_name,
    request_refusals,
    stage_received_file,
)
from apps.refusals import Refused
from apps.removal import routing
from apps.removal.base import InputKind
from apps.removal.registry import accepts

JOBS_PER_PAGE = 20
NO_CHANGE = 204  # htmx leaves the page alone on 204: the cheap answer of a live refresh
ANNOUNCE_AT_MOST = 5  # a screen reader reads every word: name a few videos, not a whole batch


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
    already: list[submission.AlreadyCleaned] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.line_errors or self.refused_files or self.already)

    @property
    def already_groups(self) -> list[tuple[str, list[submission.AlreadyCleaned]]]:
        """What was set aside, under its headline: being cleaned now, then already cleaned."""
        running = [item for item in self.already if item.in_flight]
        done = [item for item in self.already if not item.in_flight]
        groups = (("Already being cleaned", running), ("Already cleaned", done))
        return [(headline, items) for headline, items in groups if items]


def _submit_form(request: MemberRequest, **kwargs: Any) -> SubmitForm:
    confirmed = request.user.ownership_confirmed_at is not None
    return SubmitForm(ownership_confirmed=confirmed, **kwargs)


@team_member_required
@require_POST
def submit(request: MemberRequest) -> HttpResponse:
    """Submits the form; or, for a file's *Remove* button, drops that file and shows the form
    again. Files sent with the form are kept as uploads whatever happens to the rest of it,
    so a refusal (the ownership box, credits, a monthly limit) never costs an upload."""
    form = _submit_form(request, data=request.POST, files=request.FILES)
    outcome = Outcome(refused_files=[r for r in request_refusals(request) if r.name])
    if whole_batch := [r.message for r in request_refusals(request) if not r.name]:
        form.is_valid()
        form.add_error(None, whole_batch[0])
        return _dashboard(request, form, outcome)
    valid = form.is_valid()
    sent_as = form.cleaned_data.get("submission")
    if made := submission.jobs_of_submission(team=request.membership.team, submission=sent_as):
        # Told before any file of a resent form is received again or checked.
        form.add_error(None, _already_sent_message(len(made)))
        return _dashboard(request, form, outcome)
    received = _stage_received_files(request, form, outcome)
    if "remove" in request.POST:
        discard(_get_upload(request, request.POST["remove"]))
        # Nothing was submitted: the form comes back as it was sent, less that file.
        kept = {
            "links": request.POST.get("links", ""),
            "owns_videos": "owns_videos" in request.POST,
        }
        return _dashboard(request, _submit_form(request, initial=kept), outcome)
    if valid:
        _submit_valid(request, form, outcome, received)
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


def _stage_received_files(
    request: MemberRequest, form: SubmitForm, outcome: Outcome
) -> list[Upload]:
    """Keeps the files sent with the form (without JavaScript) as the person's uploads, each
    checked on its own; a refused one is told by name."""
    videos = form.cleaned_data.get("videos") or []
    if not videos:
        return []
    try:
        submission.require_files_accepted()
    except Refused as exc:
        form.add_error(None, exc.message)
        return []
    staged = []
    for received in videos:
        try:
            staged.append(stage_received_file(membership=request.membership, uploaded=received))
        except Refused as exc:
            outcome.refused_files.append(Refusal(display_name(received.name), exc.message))
    return staged


def _submit_valid(
    request: MemberRequest, form: SubmitForm, outcome: Outcome, received: list[Upload]
) -> None:
    membership = request.membership
    if form.cleaned_data.get("owns_videos"):
        request.user.confirm_ownership()
    outcome.line_errors = form.paste.errors
    outcome.duplicates = form.paste.duplicates
    try:
        uploads = _staged_uploads(membership, form.cleaned_data["uploads"]) + received
        uploads, repeats = submission.drop_repeated_files(uploads)
        outcome.refused_files += [Refusal(r.upload.name, r.message) for r in repeats]
        links = form.paste.links
        if not form.cleaned_data["again"]:
            links, uploads, outcome.already = submission.split_already_cleaned(
                team=membership.team, links=links, uploads=uploads
            )
        if links or uploads:
            created = submission.submit_jobs(
                membership=membership,
                links=links,
                uploads=uploads,
                submission=form.cleaned_data["submission"],
            )
            outcome.created = len(created)
    except submission.AlreadySubmitted as exc:
        form.add_error(None, _already_sent_message(len(exc.jobs)))
    except Refused as exc:
        form.add_error(None, exc.message)


def _get_upload(request: MemberRequest, public_id: str) -> Upload:
    try:
        return get_team_owned(request, Upload.objects.all(), public_id=uuid.UUID(public_id))
    except ValueError:
        raise Http404("No such upload.") from None


def _staged_uploads(membership: Membership, ids: list[uuid.UUID]) -> list[Upload]:
    """The uploads the form names, in the order the person chose them (which the jobs keep).
    Raises `UploadGone` if any was already submitted or removed, or is another team's."""
    found = Upload.objects.filter(team=membership.team, public_id__in=ids).in_bulk(
        field_name="public_id"
    )
    uploads = [found[public_id] for public_id in dict.fromkeys(ids) if public_id in found]
    if len(uploads) != len(set(ids)):
        raise submission.UploadGone
    return uploads


def _already_sent_message(videos: int) -> str:
    return ngettext(
        "This video was already added when this form was first sent; nothing was charged "
        "again. It is at the top of the list below.",
        "These %(count)d videos were already added when this form was first sent; nothing "
        "was charged again. They are at the top of the list below.",
        videos,
    ) % {"count": videos}


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
        # Every file this person uploaded and has not submitted: refused forms and reloads
        # lose none of them.
        "staged": Upload.objects.staged_by(
            team_id=request.membership.team_id, user_id=request.user.pk
        ),
        # Only people who paste links hear about links: their notice is in the links box.
        "outages": routing.outages([InputKind.FILE]),
        "link_outages": routing.outages([InputKind.LINK]),
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
    ahead = job.ahead()
    fingerprint = _job_fingerprint(job, ahead)
    if request.htmx:
        if request.GET.get("since") == fingerprint:
            return HttpResponse(status=NO_CHANGE)
        template = "jobs/job_detail.html#status_refresh"
    else:
        template = "jobs/job_detail.html"
    return TemplateResponse(
        request,
        template,
        {
            "job": job,
            "timeline": folded_timeline(list(job.events.all())),
            "fingerprint": fingerprint,
            # Only about its own kind of input, and only while it has not ended.
            "outages": routing.outages([InputKind(job.input_kind)]) if job.is_in_flight else [],
            "where_it_is": job.where_it_is(ahead),
            "retry": None if job.is_in_flight else job.retries.first(),
            "original_retention_hours": settings.ORIGINAL_RETENTION_HOURS,
        },
    )


def _job_fingerprint(job: Job, ahead: int | None) -> str:
    # The progress is part of it: an estimate moves on while the job itself does not change;
    # so is its place in line, which moves as the videos before it go out.
    return f"{job.state}-{job.updated_at.timestamp():.6f}-{job.progress}-{ahead}"


@team_member_required
@require_POST
def retry(request: MemberRequest, public_id: str) -> HttpResponse:
    job = _get_job(request, public_id)
    try:
        new_job = submission.retry_job(membership=request.membership, job=job)
    except submission.AlreadyRetried as exc:
        messages.info(request, f"{exc} Here is how that went.")
        return redirect(exc.retry)
    except Refused as exc:
        messages.error(request, exc.message)
        return redirect(job)
    messages.success(request, "Trying again as a new job. Credits are held until it finishes.")
    return redirect(new_job)


@team_member_required
@require_POST
def cancel(request: MemberRequest, public_id: str) -> HttpResponse:
    job = _get_job(request, public_id)
    if lifecycle.cancel_job(job):
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
    return serve_stored(
        result_name(job),
        job.download_name,
        "video/mp4",
        attachment=False,
        byte_range=request.headers.get("Range", ""),
    )


@team_member_required
@require_GET
def original(request: MemberRequest, public_id: str) -> HttpResponseBase:
    """The uploaded original, while it is kept: the "before" of the comparison."""
    job = _get_job(request, public_id)
    if not job.original_file:
        raise Http404("The original of this video is no longer kept.")
    return serve_stored(
        str(job.original_file.name),
        "original.mp4",
        "video/mp4",
        attachment=False,
        byte_range=request.headers.get("Range", ""),
    )


@team_member_required
@require_GET
def poster(request: MemberRequest, public_id: str, which: str) -> HttpResponseBase:
    job = _get_job(request, public_id)
    stored = {"original": job.original_poster, "result": job.result_poster}.get(which)
    if not stored:
        raise Http404("No poster.")
    return serve_stored(str(stored.name), f"{which}.jpg", "image/jpeg", attachment=False)
