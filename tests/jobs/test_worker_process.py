"""Jobs through a real worker cluster, including one killed in the middle of a download."""

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from django.core.files.storage import default_storage
from prometheus_client.parser import text_string_to_metric_families

from apps.billing.models import LedgerEntry
from apps.jobs import dispatcher, submission
from apps.jobs.models import Job, JobState
from apps.simulators.kie import CHUNK_BYTES, KieSimulator
from tests.live import WorkerProcess
from tests.stack import SORA_LINK

pytestmark = pytest.mark.django_db(transaction=True)

LEASE_SECONDS = 5


@pytest.fixture
def stack(
    make_simulator, settings, tmp_path: Path
) -> Iterator[tuple[KieSimulator, Callable[..., WorkerProcess]]]:
    """The simulator, storage shared with worker processes, and a way to start workers."""
    simulator = make_simulator(api_key=settings.KIE_SIMULATOR_API_KEY, latency=(0.2, 0.4))
    var_dir = tmp_path / "var"
    settings.KIE_SIMULATOR = True
    settings.KIE_BASE_URL = simulator.url
    settings.KIE_API_KEY = settings.KIE_SIMULATOR_API_KEY
    settings.JOB_LEASE_SECONDS = LEASE_SECONDS
    settings.DOWNLOAD_TEMP_DIR = str(var_dir / "tmp")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": var_dir / "media"},
        },
    }
    workers: list[WorkerProcess] = []

    def start_worker(**env: str) -> WorkerProcess:
        port = simulator.url.rsplit(":", 1)[1]
        worker = WorkerProcess(
            var_dir=var_dir,
            simulator_port=int(port),
            extra_env={"JOB_LEASE_SECONDS": str(LEASE_SECONDS), **env},
        )
        workers.append(worker)
        return worker

    yield simulator, start_worker
    for worker in workers:
        worker.kill()  # the test is over: no need to wait for the task in hand


def wait_for(
    condition: Callable[[], bool], *, seconds: float, what: str, worker: WorkerProcess
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{worker.output()[-3000:]}")


def job_state(job: Job) -> str:
    return Job.objects.values_list("state", flat=True).get(pk=job.pk)


def test_a_real_worker_process_takes_a_job_to_done(stack, alice_membership):
    _, start_worker = stack
    worker = start_worker()

    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    wait_for(
        lambda: job_state(job) == JobState.SUCCEEDED, seconds=60, what="success", worker=worker
    )
    job.refresh_from_db()
    assert default_storage.size(str(job.result_file.name)) == job.result_size
    kinds = sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["capture", "hold"]


def test_a_worker_serves_the_provider_calls_its_processes_made_for_prometheus(
    stack, alice_membership, tmp_path
):
    _, start_worker = stack
    folder = tmp_path / "prometheus"
    folder.mkdir()
    worker = start_worker(PROMETHEUS_MULTIPROC_DIR=str(folder), WORKER_METRICS_PORT="0")
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    wait_for(
        lambda: job_state(job) == JobState.SUCCEEDED, seconds=60, what="success", worker=worker
    )
    found = re.search(r"Worker metrics on (http://127\.0\.0\.1:\d+/metrics)", worker.output())
    assert found, worker.output()

    # The cluster's processes sent the job and read its status; the exporter is another one.
    response = httpx.get(found[1], timeout=10)

    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    counts = {
        sample.labels["operation"]: sample.value
        for sample in families["unmark_provider_call_seconds"].samples
        if sample.name.endswith("_count") and sample.labels["provider"] == "kie"
    }
    assert counts["start"] == 1
    assert counts["status"] >= 1
    # The database's gauges are the web's to serve (once per web server, not per worker too).
    assert "unmark_jobs" not in families
    assert "unmark_queue_depth" not in families


def test_a_worker_asked_for_metrics_without_a_shared_folder_does_not_start(stack):
    _, start_worker = stack
    worker = start_worker(WORKER_METRICS_PORT="0", PROMETHEUS_MULTIPROC_DIR="")

    assert worker.process.wait(timeout=60) == 1
    assert "WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR" in worker.output()


def test_a_worker_killed_mid_download_is_replaced_and_the_job_is_charged_once(
    stack, alice_membership, settings
):
    simulator, start_worker = stack
    size = 40 * CHUNK_BYTES
    simulator.configure(result_bytes=size, result_bytes_per_second=8 * CHUNK_BYTES)  # ~5 s
    temp_dir = Path(settings.DOWNLOAD_TEMP_DIR)
    # Generated bytes, not a video: what is drilled is the download, so it is stored unsigned.
    first = start_worker(C2PA_SIGNING="0")
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    wait_for(
        lambda: any(p.stat().st_size > 0 for p in temp_dir.glob("*.part")),
        seconds=60,
        what="the download to start",
        worker=first,
    )

    first.kill()

    assert job_state(job) == JobState.DOWNLOADING
    second = start_worker(C2PA_SIGNING="0")

    def finished() -> bool:
        # What the scheduled sweep does every minute: hand due jobs to the workers.
        dispatcher.poll_due_jobs(run_seconds=0)
        return job_state(job) == JobState.SUCCEEDED

    wait_for(finished, seconds=90, what="the job to finish after the kill", worker=second)
    job.refresh_from_db()
    simulator.configure(result_bytes_per_second=0)
    served = httpx.get(job.result_url).content
    assert job.result_size == size == len(served)
    with default_storage.open(str(job.result_file.name), "rb") as stored:
        assert stored.read() == served
    assert job.result_sha256 == hashlib.sha256(served).hexdigest()
    kinds = sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["capture", "hold"]
    media = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    assert [p.name for p in media.rglob("*") if p.is_file()] == [Path(str(job.result_file)).name]
    assert Path(str(job.result_file)).name.startswith(str(job.public_id))
    assert list(temp_dir.glob("*.part")) == []
