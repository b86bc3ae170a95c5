"""`/healthz` for load balancers and uptime checks: 200 when the database, the task broker and
the result storage answer.

It is answered by the first middleware, before host validation and HTTPS redirects, because
probes call it by IP address over plain HTTP from inside the network.
"""

import logging
import time
from collections.abc import Callable

from django.core.files.storage import default_storage, storages
from django.db import connection
from django.db.models import Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django_q.brokers import get_broker

from apps.jobs.models import Job

logger = logging.getLogger(__name__)

PATH = "/healthz"


def healthz_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path == PATH and request.method in ("GET", "HEAD"):
            return healthz()
        return get_response(request)

    return middleware


def healthz() -> JsonResponse:
    checks = {
        "database": _timed(_check_database),
        "broker": _timed(_check_broker),
        "storage": _timed(_check_storage),
    }
    healthy = all(check["status"] == "ok" for check in checks.values())
    response = JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503
    )
    add_never_cache_headers(response)
    return response


def _check_database() -> dict[str, object]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_broker() -> dict[str, object]:
    broker = get_broker()
    if not broker.ping():
        raise ConnectionError("broker did not answer")
    # How far behind the workers are: the most overdue step of any job in flight. Reported,
    # not judged: a backlog is no reason to take the web servers out of rotation.
    oldest_due = Job.objects.due(timezone.now()).aggregate(oldest=Min("next_check_at"))["oldest"]
    lag = (timezone.now() - oldest_due).total_seconds() if oldest_due else 0.0
    return {"kind": type(broker).__name__, "queued": broker.queue_size(), "lag_s": round(lag, 1)}


def _check_storage() -> dict[str, object]:
    default_storage.exists("healthz")  # a stat locally, a HEAD request on S3
    return {"kind": type(storages["default"]).__name__}


def _timed(check: Callable[[], dict[str, object]]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # any failure is a failed check, reported as such
        # The response is public: name the failure, keep hosts and credentials in the log.
        logger.exception("health check failed", extra={"check": check.__name__})
        return {"status": "error", "error": type(exc).__name__}
    return {
        "status": "ok",
        "ms": round((time.perf_counter() - started) * 1000, 1),
        **detail,
    }
