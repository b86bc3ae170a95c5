"""Every request gets an id: the one the proxy in front sent (`X-Request-ID`, when it looks like
an id), or a new one. Every log line the request causes carries it (`config.logfmt`), and the
response returns it, so a person reporting a problem and the logs can meet."""

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps import telemetry

HEADER = "X-Request-ID"
# Letters, digits and a little punctuation, of a sane length: anything else (a log-injection
# attempt, a 4 kB value) is replaced, never echoed.
_SANE = re.compile(r"[A-Za-z0-9._:@-]{8,128}")


def request_id_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(HEADER, "")
        request_id = incoming if _SANE.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = telemetry.request_id.set(request_id)
        try:
            response = get_response(request)
        finally:
            telemetry.request_id.reset(token)
        response[HEADER] = request_id
        return response

    return middleware
