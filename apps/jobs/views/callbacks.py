"""What providers call, without signing in: a job's callback (one route per provider, each
verified the provider's own way) and a short-lived signed link to a job's original, for a
provider that fetches its input.

A callback's body is never trusted: it only makes us ask the provider for the task's status
(once for a burst of callbacks where the provider repeats them), or, for a job whose start got
no answer, whether the task it names is the one that start created. The job's next check moves
to within `CALLBACK_CHECK_SECONDS` as well: if the worker holding that status query is killed,
the poller asks instead, seconds later rather than at the 30-45 s fallback poll.
"""

import logging

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.jobs import queue
from apps.jobs.models import Job
from apps.jobs.uploads import LinkRefused, job_for_original_link
from apps.removal.base import CallbackRejected, CallbackReplayed, ProviderError
from apps.removal.registry import REGISTRY, get_provider

logger = logging.getLogger("unmark.jobs")

# Longer than a status query usually takes to be picked up and answered (so the poller rarely
# asks twice), short enough that a lost one costs seconds.
CALLBACK_CHECK_SECONDS = 3


@csrf_exempt  # a provider sends no CSRF token; the per-job secret in the URL stands in for it.
@require_POST
def provider_callback(request: HttpRequest, provider: str, token: str) -> HttpResponse:
    if provider not in REGISTRY:
        raise Http404
    job = Job.objects.filter(callback_token=token, provider=provider).first()
    if job is None:
        raise Http404
    removal = get_provider(provider)
    try:
        task_id = removal.verify_callback(request.headers, request.body)
    except CallbackReplayed:
        logger.warning("callback replayed", extra={"job": job.public_id})
        return JsonResponse({"received": False, "detail": "already received"}, status=409)
    except CallbackRejected as exc:
        logger.warning("callback rejected", extra={"job": job.public_id, "reason": str(exc)})
        return JsonResponse({"received": False, "detail": "rejected"}, status=400)
    except ProviderError as exc:
        # It could not be checked now (its signing secret could not be fetched): the provider
        # sends it again later.
        logger.warning("callback not checked", extra={"job": job.public_id, "error": str(exc)})
        return JsonResponse({"received": False, "detail": "try again later"}, status=503)
    if job.task_id and task_id != job.task_id:
        logger.warning("callback for another task", extra={"job": job.public_id})
        return JsonResponse({"received": False, "detail": "task mismatch"}, status=400)
    if job.is_in_flight and (
        not removal.callback_window_seconds
        or job.note_callback(window_seconds=removal.callback_window_seconds)
    ):
        queue.check_after_callback(job.pk, task_id=task_id)
        if job.check_within(CALLBACK_CHECK_SECONDS):
            # The poller stops while nothing is due soon, as it is for jobs awaiting callbacks.
            queue.start_poller()
    return JsonResponse(removal.callback_received)


@require_GET
def original_link(request: HttpRequest, token: str) -> FileResponse:
    """A job's original by a short-lived signed link (`uploads.original_link`), without
    signing in: how a provider that fetches its input gets it from local disk. Bad or expired
    links get 404."""
    try:
        job = job_for_original_link(token)
    except LinkRefused as exc:
        raise Http404(str(exc)) from None
    response = FileResponse(
        default_storage.open(str(job.original_file.name), "rb"), content_type="video/mp4"
    )
    response["Cache-Control"] = "no-store"
    return response
