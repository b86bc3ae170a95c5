"""What every layer may record about itself: Prometheus counters and histograms, and the log
context (the request being served).

It sits below every app (import-linter forbids it to import any of them), so the job pipeline,
billing or an outgoing-webhooks app can count things without reaching up into `apps.ops`,
which only exposes them (`/metrics`) next to the gauges it reads from the database.

Under gunicorn and the task workers, `PROMETHEUS_MULTIPROC_DIR` (set before this module is
first imported) makes prometheus-client keep each process's values in files there, which the
scrape adds up; without it, values live in this process only. A worker cluster's processes
are served by `serve_worker_metrics`, since the web's `/metrics` cannot read another machine's
(or container's) folder.
"""

import contextvars
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

PROVIDER_CALL_SECONDS = Histogram(
    "unmark_provider_call_seconds",
    "Time taken by calls to a removal provider (start a task, read its status, probe, balance).",
    ["provider", "operation"],
    # From a status read on loopback to an upload of a large video to a GPU server.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
PROVIDER_CALL_ERRORS = Counter(
    "unmark_provider_call_errors",
    "Calls to a removal provider that raised, by the kind of error the app saw.",
    ["provider", "operation", "error"],
)
WEBHOOK_DELIVERIES = Counter(
    "unmark_webhook_deliveries",
    "Outgoing webhook deliveries to customers' endpoints, by outcome.",
    ["outcome"],
)

# The id of the request being served (see config.request_id), for every log line it causes.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


@contextmanager
def provider_call(provider: str, operation: str) -> Iterator[None]:
    """Times one call to a provider; an exception is counted by its class name and re-raised."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        PROVIDER_CALL_ERRORS.labels(provider, operation, type(exc).__name__).inc()
        raise
    finally:
        PROVIDER_CALL_SECONDS.labels(provider, operation).observe(time.perf_counter() - started)


def webhook_delivered(outcome: str) -> None:
    """Counts one outgoing webhook delivery: "delivered", "failed", "gave_up"… (a short word,
    never a URL or an id: each distinct outcome is a time series)."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()


class MetricsFolderMissing(Exception):
    pass


def serve_worker_metrics(*, address: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serves on a thread, at http://address:port/metrics, the counters and histograms every
    process sharing `PROMETHEUS_MULTIPROC_DIR` recorded (a worker cluster's processes are
    forked: only the folder joins them). Not the database's gauges: the web serves those."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise MetricsFolderMissing(
            "WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR: an empty folder the cluster's "
            "processes share, where each one writes its metrics."
        )
    registry = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry)
    return start_http_server(port, addr=address, registry=registry)
