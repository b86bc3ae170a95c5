"""`/metrics`: scraped as Prometheus does, parsed by prometheus_client's own parser, with the
real values of the database and of the provider calls made; guarded by its bearer token."""

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.billing import ledger
from apps.jobs.models import JobState
from apps.removal.base import RetryableError
from apps.removal.models import ProviderAlert, SwcServer
from apps.removal.registry import get_provider
from tests.factories import make_job
from tests.live import ROOT

pytestmark = pytest.mark.django_db

TOKEN = "a-long-random-metrics-token"


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client | None = None, *, token: str = TOKEN) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, by name and sorted labels."""
    response = (client or Client()).get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_without_a_token_configured_there_is_no_metrics_address(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize(
    "authorization", ["", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"]
)
def test_a_scrape_without_the_right_token_is_refused(client, token, authorization):
    response = client.get("/metrics", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"unmark_jobs" not in response.content


def test_it_answers_prometheus_on_any_host_name_like_healthz(client, token):
    # Prometheus scrapes each server by its private address, which ALLOWED_HOSTS never lists.
    response = client.get(
        "/metrics", headers={"Authorization": f"Bearer {token}"}, HTTP_HOST="10.0.0.7:8000"
    )

    assert response.status_code == 200


def test_jobs_queue_and_credits_are_read_from_the_database(token, alice, acme, settings):
    team = alice.memberships.get(team__is_personal=True).team
    now = timezone.now()
    make_job(acme, created_at=now - timedelta(minutes=10))
    make_job(acme, created_at=now - timedelta(minutes=2))
    held = make_job(team, state=JobState.PROCESSING, provider="swc", waited=3)
    ledger.hold(team=team, credits=10, key=f"hold:job:{held.pk}", job=held)
    make_job(team, state=JobState.SUCCEEDED, waited=1, took=2)
    make_job(team, state=JobState.FAILED, waited=1, took=2)
    ProviderAlert.objects.create(provider="kie", kind="paused", message="Paused.")
    settings.SWC_SERVERS = [
        {"url": url, "authorization": ""} for url in ("http://gpu1:5344", "http://gpu2:5344")
    ]
    SwcServer.objects.create(url="http://gpu1:5344")
    SwcServer.objects.create(url="http://gpu2:5344", healthy=False)

    found = scrape()

    assert found["unmark_jobs", (("provider", "kie"), ("state", "queued"))] == 2
    assert found["unmark_jobs", (("provider", "swc"), ("state", "processing"))] == 1
    assert found["unmark_jobs", (("provider", "kie"), ("state", "succeeded"))] == 1
    assert found["unmark_jobs", (("provider", "kie"), ("state", "failed"))] == 1
    assert found["unmark_queue_depth", (("provider", "kie"),)] == 2
    assert found["unmark_queue_depth", (("provider", "swc"),)] == 0
    assert 600 <= found["unmark_queue_oldest_seconds", (("provider", "kie"),)] < 660
    assert found["unmark_queue_oldest_seconds", (("provider", "swc"),)] == 0
    assert found["unmark_credits_held", ()] == 10
    assert found["unmark_credits_outstanding", ()] == 90  # Alice's, Bob's, Carol's sign-up credits
    assert found["unmark_provider_alerts_open", (("kind", "paused"), ("provider", "kie"))] == 1
    machine = "unmark_provider_machine_up"
    assert found[machine, (("provider", "swc"), ("url", "http://gpu1:5344"))] == 1
    assert found[machine, (("provider", "swc"), ("url", "http://gpu2:5344"))] == 0


def test_provider_calls_are_timed_and_their_errors_counted(token, kie_simulator, settings):
    calls = (
        "unmark_provider_call_seconds_count",
        (("operation", "remaining_credits"), ("provider", "kie")),
    )
    errors = (
        "unmark_provider_call_errors_total",
        (("error", "RetryableError"), ("operation", "remaining_credits"), ("provider", "kie")),
    )
    before = scrape()

    assert get_provider("kie").remaining_credits() == 123_450
    settings.KIE_BASE_URL = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(RetryableError):
        get_provider("kie").remaining_credits()

    after = scrape()
    assert after[calls] - before.get(calls, 0) == 2
    assert after[errors] - before.get(errors, 0) == 1


def test_in_multiprocess_mode_a_scrape_adds_up_every_process(tmp_path, token):
    """gunicorn's workers and the task workers each write their own files; the scrape, from
    yet another process, sums them."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "DJANGO_ENV": "test"}
    record = textwrap.dedent("""
        from apps import telemetry
        telemetry.webhook_delivered("delivered")
        with telemetry.provider_call("kie", "status"):
            pass
    """)
    for _ in range(2):
        subprocess.run([sys.executable, "-c", record], cwd=ROOT, env=env, check=True, timeout=60)
    scrape_there = textwrap.dedent("""
        import django
        django.setup()
        from apps.ops import metrics
        # The database's gauges are another test's business (and not this process's to reach).
        metrics.DatabaseCollector.collect = lambda self: iter(())
        print(metrics.exposition().decode())
    """)
    result = subprocess.run(
        [sys.executable, "-c", scrape_there],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    found = samples(result.stdout)
    assert found["unmark_webhook_deliveries_total", (("outcome", "delivered"),)] == 2
    status_calls = (("operation", "status"), ("provider", "kie"))
    assert found["unmark_provider_call_seconds_count", status_calls] == 2
    # This process's own Python figures are not mixed in: only what the files hold.
    assert not any(name.startswith("python_gc") for name, _ in found)


def test_only_reading_is_allowed(client, token):
    response = client.post("/metrics", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
