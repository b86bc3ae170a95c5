"""The guard around every API operation (see `guard`)."""

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase

from apps.api import idempotency, ratelimit
from apps.api.keys import Principal, principal_of
from apps.api.problems import Problem
from apps.jobs.uploads import request_refusals


def guard(run: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Around every operation, Ninja's own key check included: a stopped upload refuses the
    request; then, for a request with a working key, its rate limit, read-only keys refused
    anything but reading, and `Idempotency-Key` on POSTs."""

    @functools.wraps(run)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if refused := _upload_refused(request):
            return refused.response()
        principal = principal_of(request)
        if principal is None:  # Ninja answers 401, or the operation needs no key
            return run(request, *args, **kwargs)
        try:
            count_request(principal)
            if request.method == "GET":
                return run(request, *args, **kwargs)
            if principal.key.read_only:
                raise Problem(
                    403,
                    "read-only-key",
                    "Read-only key",
                    "This API key can only read. Use a read-and-write key to change anything.",
                )
            return idempotency.respond_once(
                request, team_id=principal.team_id, run=lambda: run(request, *args, **kwargs)
            )
        except Problem as problem:
            return problem.response()
        except RequestDataTooBig:
            return too_big().response()

    return guarded


def count_request(principal: Principal) -> None:
    """Counts one request of the principal's key; raises the 429 problem over its limit."""
    if wait := ratelimit.seconds_to_wait(principal.key.pk):
        raise Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"This key sent more requests than its limit per minute. Try again in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )


def _upload_refused(request: HttpRequest) -> Problem | None:
    """A file the upload handler stopped while it arrived (too large, too many) refuses the
    whole request, before anything looks at what did arrive."""
    if request.method != "POST" or request.content_type != "multipart/form-data":
        return None
    request.FILES  # noqa: B018  # streams the files to disk, through CappedUploadHandler
    if refusals := request_refusals(request):
        return Problem(413, "upload-too-large", "Upload refused", refusals[0].message)
    return None


def too_big() -> Problem:
    return Problem(413, "request-too-large", "Request too large", "The request body is too large.")
