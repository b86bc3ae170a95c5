"""A file job on Replicate through a real worker process: the worker sends the original as a
signed link to the simulator, which fetches it from the app, cleans it, and calls back with
signed webhooks that the app (a live server) verifies; the worker then saves the result.

Until routing chooses providers, the job is Replicate's because its row says so
(`replicate_file_jobs` makes it with `provider="replicate"`)."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from pytest_django.live_server_helper import LiveServer

from apps.billing import ledger
from apps.billing.models import LedgerEntry
from apps.jobs.models import Job, JobState
from apps.removal.replicate import cost_micros
from apps.simulators.replicate import ReplicateSimulator
from tests.live import WorkerProcess, free_port
from tests.replicate import PRICE, replicate_file_jobs
from tests.swc import mark_brightness

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Stack:
    simulator: ReplicateSimulator
    live_url: str
    start_worker: Callable[[], WorkerProcess]


@pytest.fixture
def stack(
    make_replicate_simulator, settings, tmp_path: Path, alice_membership, live_server: LiveServer
) -> Iterator[Stack]:
    """The Replicate simulator, this process as the app's web side (the live server takes the
    webhooks and serves the signed originals), and worker processes sharing its storage."""
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
    settings.REPLICATE_SIMULATOR = True
    settings.FILE_PROVIDERS = ["replicate"]
    settings.REPLICATE_BASE_URL = simulator.url
    settings.REPLICATE_API_TOKEN = settings.REPLICATE_SIMULATOR_API_TOKEN
    settings.REPLICATE_WEBHOOK_SECRET = ""
    settings.PUBLIC_BASE_URL = live_server.url
    ledger.grant(team=alice_membership.team, credits=1000, key="replicate", memo="e2e")
    workers: list[WorkerProcess] = []

    def start_worker() -> WorkerProcess:
        worker = WorkerProcess(
            var_dir=var_dir,
            simulator_port=free_port(),  # no Kie here
            extra_env={
                "REPLICATE_SIMULATOR": "1",
                "FILE_PROVIDERS": "replicate",
                "REPLICATE_SIMULATOR_PORT": simulator.url.rsplit(":", 1)[1],
                "REPLICATE_PRICE_PER_SECOND": str(PRICE),
                "PUBLIC_BASE_URL": live_server.url,
            },
        )
        workers.append(worker)
        return worker

    yield Stack(simulator, live_server.url, start_worker)
    for worker in workers:
        worker.kill()  # the test is over: no need to wait for the task in hand


def wait_until_final(jobs: list[Job], worker: WorkerProcess, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Job.objects.filter(pk__in=[job.pk for job in jobs]).in_flight().exists():
            return
        time.sleep(0.1)
    pytest.fail(f"jobs did not finish; worker log:\n{worker.output()[-3000:]}")


def test_a_file_job_on_replicate_goes_through_a_real_worker_to_done_with_its_cost(
    stack, tmp_path: Path, clip: Path, alice_membership
):
    simulator, live_url = stack.simulator, stack.live_url
    worker = stack.start_worker()

    [job] = replicate_file_jobs(alice_membership, clip)
    wait_until_final([job], worker)
    log = worker.output()[-3000:]

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, f"{job.state}: {job.failure_message}\n{log}"
    [prediction] = simulator.seen()["predictions"]
    assert prediction["id"] == job.task_id
    assert prediction["input"]["video"].startswith(f"{live_url}/originals/")
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


@pytest.mark.drill
def test_a_batch_on_replicate_with_cold_starts_failures_and_repeated_webhooks_settles_once(
    stack, clip: Path, alice_membership
):
    stack.simulator.configure(cold_start_seconds=1.0, failure_rate=0.4, webhook_repeats=2)
    worker = stack.start_worker()

    jobs = replicate_file_jobs(alice_membership, clip, count=6)
    wait_until_final(jobs, worker)

    predictions = {p["id"]: p for p in stack.simulator.seen()["predictions"]}
    assert len(predictions) == len(jobs)  # one prediction per video, never a second
    for job in jobs:
        job.refresh_from_db()
        prediction = predictions[job.task_id]
        kinds = sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
        if prediction["status"] == "succeeded":
            assert job.state == JobState.SUCCEEDED
            assert kinds == ["capture", "hold"]
        else:
            assert job.state == JobState.FAILED
            assert kinds == ["hold", "release"]
            assert "CUDA out of memory" in job.failure_message
        # Failed predictions are billed by Replicate too: their cost is recorded as well.
        predict_time = prediction["metrics"]["predict_time"]
        assert job.provider_cost_micros == cost_micros(predict_time, PRICE)
    call_command("reconcile")  # raises on any drift
