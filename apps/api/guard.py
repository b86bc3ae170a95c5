"""The guard every API operation passes once its key is known (see `guard`)."""

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase

from apps.api import idempotency, ratelimit
from apps.api.keys import principal_of
from apps.api.problems import Problem


def guard(run: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Around every operation, once its key is known: the key's rate limit, read-only keys
    refused anything but reading, and `Idempotency-Key` on POSTs."""

    @functools.wraps(run)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        principal = principal_of(request)
        if principal is None:  # Ninja answers 401, or the operation needs no key
            return run(request, *args, **kwargs)
        try:
            if wait := ratelimit.seconds_to_wait(principal.key.pk):
                raise Problem(
                    429,
                    "rate-limited",
                    "Too many requests",
                    f"This key sent more requests than its limit per minute. Try again in "
                    f"{wait} seconds.",
                    headers={"Retry-After": str(wait)},
                )
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


def too_big() -> Problem:
    return Problem(413, "request-too-large", "Request too large", "The request body is too large.")
