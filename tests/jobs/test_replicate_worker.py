"""A file job on Replicate through a real worker process: the worker sends the original as a
signed link to the simulator, which fetches it from the app, cleans it, and calls back with
signed webhooks that the app (a live server) verifies; the worker then saves the result.

Until routing chooses providers, the job is Replicate's because its row says so
(`replicate_file_jobs` makes it with `provider="replicate"`)."""

import time
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from pytest_django.live_server_helper import LiveServer

from apps.billing import ledger
from apps.billing.models import LedgerEntry
from apps.jobs.models import Job, JobState
from apps.jobs.providers.replicate import cost_micros
from tests.jobs.conftest import free_port
from tests.jobs.replicate import PRICE, replicate_file_jobs
from tests.jobs.swc import mark_brightness
from tests.live import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_file_job_on_replicate_goes_through_a_real_worker_to_done_with_its_cost(
    make_replicate_simulator,
    settings,
    tmp_path: Path,
    clip: Path,
    alice_membership,
    live_server: LiveServer,
):
    simulator = make_replicate_simulator(
        api_token=settings.REPLICATE_SIMULATOR_API_TOKEN,
        cold_start_seconds=0.5,
        processing_seconds=0.5,
    )
    var_dir = tmp_path / "var"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": var_dir / "media"},
        },
    }
    # The live server (this process) takes the webhooks and serves the signed original.
    settings.REPLICATE_SIMULATOR = True
    settings.REPLICATE_BASE_URL = simulator.url
    settings.REPLICATE_API_TOKEN = settings.REPLICATE_SIMULATOR_API_TOKEN
    settings.REPLICATE_WEBHOOK_SECRET = ""
    settings.PUBLIC_BASE_URL = live_server.url
    ledger.grant(team=alice_membership.team, credits=100, key="replicate", memo="e2e")
    worker = WorkerProcess(
        var_dir=var_dir,
        simulator_port=free_port(),  # no Kie here
        extra_env={
            "REPLICATE_SIMULATOR_PORT": simulator.url.rsplit(":", 1)[1],
            "REPLICATE_PRICE_PER_SECOND": str(PRICE),
            "PUBLIC_BASE_URL": live_server.url,
        },
    )
    try:
        [job] = replicate_file_jobs(alice_membership, clip)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and Job.objects.get(pk=job.pk).is_in_flight:
            time.sleep(0.1)
        log = worker.output()[-3000:]
    finally:
        worker.stop()

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, f"{job.state}: {job.failure_message}\n{log}"
    [prediction] = simulator.seen()["predictions"]
    assert prediction["id"] == job.task_id
    assert prediction["input"]["video"].startswith(f"{live_server.url}/originals/")
    assert prediction["webhook"] == job.callback_url
    # Both webhooks reached the app and were accepted.
    assert sorted(prediction["sim_webhooks"]) == [
        "completed sent: HTTP 200",
        "start sent: HTTP 200",
    ]
    assert job.provider_cost_micros == cost_micros(prediction["metrics"]["predict_time"], PRICE)
    assert sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True)) == [
        "capture",
        "hold",
    ]
    result = tmp_path / "result.mp4"
    result.write_bytes(default_storage.open(str(job.result_file.name)).read())
    assert max(mark_brightness(result)) < 200  # the mark is gone from the saved video
