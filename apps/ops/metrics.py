"""`/metrics` for Prometheus: the counters and histograms processes record (`apps.telemetry`)
and gauges read from the database at scrape time (`DatabaseCollector`).

Guarded by a bearer token (`METRICS_TOKEN`); without one configured the address does not
exist (404). Like `/healthz` it is answered by an early middleware, before host validation and
the HTTPS redirect, because Prometheus scrapes each web server by its private address.

With `PROMETHEUS_MULTIPROC_DIR` (gunicorn's workers, and the task workers on the same machine
when they share the directory) the values every process wrote there are added up; otherwise
this process's own are shown, with its process and Python figures.
"""

import hmac
import os
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.db.models import Count, Min, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from apps.billing.models import Wallet
from apps.jobs.models import Job, JobState
from apps.ops import rollups
from apps.removal.models import ProviderAlert
from apps.removal.registry import REGISTRY as PROVIDERS
from apps.removal.registry import get_provider

PATH = "/metrics"


class DatabaseCollector(Collector):
    """What the database says now. The job counts add the closed days' roll-ups to today's
    jobs (`apps.ops.rollups.job_counts`); the other queries read an index only (jobs' 0012
    indexes) or a small table."""

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "unmark_jobs", "Jobs by state and provider.", labels=["state", "provider"]
        )
        for (state, provider), count in sorted(rollups.job_counts().items()):
            jobs.add_metric([state, provider], count)
        yield jobs

        depth = GaugeMetricFamily(
            "unmark_queue_depth", "Jobs waiting to be sent, by provider.", labels=["provider"]
        )
        lag = GaugeMetricFamily(
            "unmark_queue_oldest_seconds",
            "How long the oldest job waiting to be sent has waited, by provider (0: none).",
            labels=["provider"],
        )
        waiting = {
            provider: (count, oldest)
            for provider, count, oldest in Job.objects.filter(state=JobState.QUEUED)
            .order_by()
            .values_list("provider")
            .annotate(n=Count("id"), oldest=Min("created_at"))
        }
        now = timezone.now()
        for provider in sorted({*PROVIDERS, *waiting}):
            count, oldest = waiting.get(provider, (0, None))
            depth.add_metric([provider], count)
            lag.add_metric([provider], (now - oldest).total_seconds() if oldest else 0.0)
        yield depth
        yield lag

        wallets = Wallet.objects.aggregate(balance=Sum("balance"), held=Sum("held"))
        yield GaugeMetricFamily(
            "unmark_credits_held",
            "Credits reserved by unfinished jobs, over all teams.",
            value=wallets["held"] or 0,
        )
        yield GaugeMetricFamily(
            "unmark_credits_outstanding",
            "Credits teams hold and have not spent (free grants included), over all teams.",
            value=wallets["balance"] or 0,
        )

        alerts = GaugeMetricFamily(
            "unmark_provider_alerts_open",
            "Open provider alerts (the provider takes no work).",
            labels=["provider", "kind"],
        )
        for provider, kind in ProviderAlert.objects.filter(resolved_at__isnull=True).values_list(
            "provider", "kind"
        ):
            alerts.add_metric([provider, kind], 1)
        yield alerts

        machines = GaugeMetricFamily(
            "unmark_provider_machine_up",
            "Machines of the providers that run their own (SWC servers): 1 up, 0 down.",
            labels=["provider", "url"],
        )
        for name in PROVIDERS:
            for machine in get_provider(name).machines():
                machines.add_metric([name, machine.address], int(machine.status != "down"))
        yield machines


class _ThisProcess(Collector):
    """The default registry's metrics (this process's counters, process and Python figures)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def metrics_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path == PATH and settings.METRICS_TOKEN:
            return metrics(request)
        return get_response(request)

    return middleware


def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.METRICS_TOKEN.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        response = HttpResponse("A valid bearer token is required.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    add_never_cache_headers(response)
    return response
