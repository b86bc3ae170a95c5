"""Receiving files one at a time, for the dashboard's script (the form works without it): each
file is checked and kept as an upload, with its own progress and a way to drop it, until the
batch is submitted. With S3 storage the browser puts the file in the bucket itself and we
check it there."""

import functools
from collections.abc import Callable

from django.http import Http404, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from apps.accounts.access import MemberRequest, get_team_owned, team_member_required
from apps.jobs.models import Upload
from apps.jobs.submission import require_files_accepted
from apps.jobs.uploads import (
    HashedUploadedFile,
    direct_to_bucket,
    discard,
    presigned_post,
    request_refusals,
    stage_received_file,
    stage_stored_object,
)
from apps.refusals import Refused


def _outsiders_unread[**P](view: Callable[P, HttpResponseBase]) -> Callable[P, HttpResponseBase]:
    """An outsider's upload gets its 404 here rather than from the site's 404 page, whose CSRF
    token handling would receive the whole body first."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        try:
            return view(*args, **kwargs)
        except Http404:
            return _refusal("Not found.", 404)

    return wrapper


# The CSRF check reads the body (the token may be a form field): it runs once the URL's team
# is known to be the person's, so an outsider's upload is refused before a byte is received.
@csrf_exempt
@_outsiders_unread
@team_member_required
@csrf_protect
@require_POST
def upload(request: MemberRequest) -> JsonResponse:
    """Receives one file through our server (local storage), checks it and keeps it ready."""
    try:
        require_files_accepted()
        if refused := request_refusals(request):
            return _refusal(refused[0].message)
        received = request.FILES.get("file")
        if not isinstance(received, HashedUploadedFile):
            return _refusal("Choose a video file to upload.")
        staged = stage_received_file(membership=request.membership, uploaded=received)
    except Refused as exc:
        return _refusal(exc.message, exc.status)
    return _upload_json(staged)


@team_member_required
@require_POST
def upload_presign(request: MemberRequest) -> JsonResponse:
    """With S3 storage: where the browser may POST one file straight into the bucket."""
    if not direct_to_bucket():
        raise Http404
    try:
        require_files_accepted()
    except Refused as exc:
        return _refusal(exc.message, exc.status)
    return JsonResponse(presigned_post(team=request.membership.team))


@team_member_required
@require_POST
def upload_confirm(request: MemberRequest) -> JsonResponse:
    """With S3 storage: checks the object the browser put in the bucket before accepting it."""
    if not direct_to_bucket():
        raise Http404
    try:
        require_files_accepted()
        staged = stage_stored_object(
            membership=request.membership,
            ticket=request.POST.get("ticket", ""),
            name=request.POST.get("name", ""),
        )
    except Refused as exc:
        return _refusal(exc.message, exc.status)
    return _upload_json(staged)


@team_member_required
@require_POST
def upload_discard(request: MemberRequest, public_id: str) -> HttpResponse:
    """Removes a file from the batch before it is submitted."""
    discard(get_team_owned(request, Upload.objects.all(), public_id=public_id))
    return HttpResponse(status=204)


def _refusal(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _upload_json(staged: Upload) -> JsonResponse:
    discard_url = reverse(
        "jobs:upload_discard",
        kwargs={"team_id": staged.team.public_id, "public_id": staged.public_id},
    )
    return JsonResponse({**staged.as_json(), "discard_url": discard_url}, status=201)
