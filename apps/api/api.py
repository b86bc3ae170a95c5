"""The public API: a Ninja API mounted at /api/v1/, its key authentication, the guard every
operation passes (rate limit, key scope, idempotency) and its errors as problem documents."""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponseBase
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from apps.api.guard import too_big
from apps.api.keys import KeyStopped, Principal, principal_of
from apps.api.problems import CONTENT_TYPE, Problem
from apps.api.routes import router

DESCRIPTION = """Everything the dashboard does for jobs and credits, for your own pipelines.

Authenticate with a team's API key: `Authorization: Bearer um_live_…` (owners and admins make
keys on the team's **API keys** page). A key sees only its own team; read-only keys cannot POST.

Send an `Idempotency-Key` header with every POST: the same key and body return the first
answer again (`Idempotent-Replayed: true`), never a second set of jobs. Errors are
`application/problem+json` with a stable `type`.
"""


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        return principal_of(request)


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Any unique string (a UUID): retrying with the same key and body returns "
    "the first answer instead of doing the work twice. Kept at least 24 hours.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


class UnmarkApi(NinjaAPI):
    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        """Ninja's schema, plus what the guard adds to every operation: errors are problem
        documents (Ninja says application/json), POSTs take an Idempotency-Key, and 409, 429
        and 503 may say when to retry."""
        schema = super().get_openapi_schema(*args, **kwargs)
        for operations in schema["paths"].values():
            for method, operation in operations.items():
                if method == "post" and operation.get("security"):  # keyed: see guard
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
                for status, response in operation.get("responses", {}).items():
                    if int(status) >= 400 and "content" in response:
                        response["content"] = {CONTENT_TYPE: response["content"].popitem()[1]}
                    if str(status) in ("409", "429", "503"):
                        response["headers"] = RETRY_AFTER
        return schema


api = UnmarkApi(
    title="Unmark API",
    version="1.0",
    description=DESCRIPTION,
    auth=ApiKeyAuth(),
    urls_namespace="api",
    docs_url=None,  # served at /api/docs by apps.api.views.docs, in the site's CSP
)


@api.exception_handler(Problem)
def _problem(request: HttpRequest, exc: Problem) -> HttpResponseBase:
    return exc.response()


@api.exception_handler(AuthenticationError)
@api.exception_handler(KeyStopped)
def _unauthenticated(request: HttpRequest, exc: Exception) -> HttpResponseBase:
    problem = Problem(
        401,
        "unauthenticated",
        "API key missing or not valid",
        "Send a live API key of your team as `Authorization: Bearer <key>`. Revoked keys, and "
        "keys whose maker has left the team, no longer work.",
        headers={"WWW-Authenticate": "Bearer"},
    )
    return problem.response()


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponseBase:
    errors = [
        {
            "item": ".".join(str(part) for part in error.get("loc", ())[1:]) or "request",
            "message": str(error.get("msg", "Not valid.")),
        }
        for error in exc.errors
    ]
    problem = Problem(
        422,
        "invalid-request",
        "The request is not valid",
        "Nothing was created or charged. Fix the items listed in errors and send it again.",
        errors=errors,
    )
    return problem.response()


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponseBase:
    return Problem(404, "not-found", "Not found", "There is nothing here for this key.").response()


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponseBase:
    if exc.status_code == 413:
        return too_big().response()
    return Problem(exc.status_code, "http-error", str(exc.message)).response()


@api.exception_handler(RequestDataTooBig)
def _request_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponseBase:
    return too_big().response()


api.add_router("", router)
