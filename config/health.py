"""`/healthz` for load balancers and uptime checks: 200 when the database, the task broker and
the result storage answer. It also shows every worker cluster (last heartbeat, whether it
reaches the database), without judging them: worker trouble must not take the web servers out
of rotation. `/healthz/workers` judges them, for an uptime check of its own: 503 when no
cluster is running or one cannot reach the database.

Both are answered by the first middleware, before host validation and HTTPS redirects, because
probes call them by IP address over plain HTTP from inside the network.
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

from apps import taskqueue
from apps.jobs.models import Job

logger = logging.getLogger(__name__)

PATH = "/healthz"
WORKERS_PATH = "/healthz/workers"


def healthz_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            if request.path == PATH:
                return healthz()
            if request.path == WORKERS_PATH:
                return workers_healthz()
        return get_response(request)

    return middleware


def healthz() -> JsonResponse:
    checks = {
        "database": _timed(_check_database),
        "broker": _timed(_check_broker),
        "storage": _timed(_check_storage),
    }
    healthy = all(check["status"] == "ok" for check in checks.values())
    return _answer(healthy, {"checks": checks, "workers": _workers()})


def workers_healthz() -> JsonResponse:
    workers = _workers()
    return _answer(workers["status"] == "ok", {"workers": workers})


def _workers() -> dict[str, object]:
    try:
        clusters = taskqueue.clusters()
    except Exception as exc:  # the cache (Redis) is down: say so, as for any check
        logger.exception("worker heartbeats unavailable")
        return {"status": "error", "error": type(exc).__name__, "clusters": []}
    shown = [
        {
            "name": cluster["name"],
            "host": cluster["host"],
            "pid": cluster["pid"],
            "last_heartbeat_s": cluster["seconds_since_heartbeat"],
            "database": "ok" if cluster["database"] else "unreachable",
        }
        for cluster in clusters
    ]
    healthy = bool(shown) and all(cluster["database"] == "ok" for cluster in shown)
    return {"status": "ok" if healthy else "error", "clusters": shown}


def _answer(healthy: bool, body: dict[str, object]) -> JsonResponse:
    response = JsonResponse(
        {"status": "ok" if healthy else "error", **body}, status=200 if healthy else 503
    )
    add_never_cache_headers(response)
    return response


def _check_database() -> dict[str, object]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_broker() -> dict[str, object]:
    status = taskqueue.broker_status()
    # How far behind the workers are: the most overdue step of any job in flight. Reported,
    # not judged: a backlog is no reason to take the web servers out of rotation.
    oldest_due = Job.objects.due(timezone.now()).aggregate(oldest=Min("next_check_at"))["oldest"]
    lag = (timezone.now() - oldest_due).total_seconds() if oldest_due else 0.0
    return {**status, "lag_s": round(lag, 1)}


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
