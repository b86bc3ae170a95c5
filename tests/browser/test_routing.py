"""Routing in a real browser: with the whole SWC pool down, an uploaded video still finishes,
on Replicate, and its page says who cleaned it.

The pool's only server is an address where nothing listens (the GPU machine is off); the
Replicate simulator runs in this process, fetches the signed original from the live server and
calls it back with signed webhooks; the worker is a real `manage.py worker` process."""

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from apps.jobs.models import Job, JobState
from apps.removal.models import ProviderAlert, SwcServer
from apps.simulators.replicate import ReplicateSimulator
from tests.browser.steps import JOB_TIMEOUT_MS, balance_chip, sign_up
from tests.clips import make_clip
from tests.live import free_port

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def replicate(make_replicate_simulator, settings) -> ReplicateSimulator:
    simulator = make_replicate_simulator(
        api_token=settings.REPLICATE_SIMULATOR_API_TOKEN,
        cold_start_seconds=0.5,
        processing_seconds=1.5,
    )
    settings.REPLICATE_SIMULATOR = True
    settings.REPLICATE_BASE_URL = simulator.url
    settings.REPLICATE_API_TOKEN = settings.REPLICATE_SIMULATOR_API_TOKEN
    settings.REPLICATE_WEBHOOK_SECRET = ""  # fetched from the simulator
    return simulator


@pytest.fixture
def dead_pool(settings) -> str:
    """The pool's one server, switched off: nothing listens at its address."""
    url = f"http://127.0.0.1:{free_port()}"
    settings.SWC_SERVERS = [{"url": url, "authorization": ""}]
    settings.FILE_PROVIDERS = ["swc", "replicate"]
    return url


@pytest.fixture
def worker_env(replicate: ReplicateSimulator, dead_pool: str) -> dict[str, str]:
    return {
        "SWC_SERVERS": dead_pool,
        "FILE_PROVIDERS": "swc,replicate",
        "REPLICATE_SIMULATOR": "1",
        "REPLICATE_SIMULATOR_PORT": str(urlsplit(replicate.url).port),
    }


def test_with_the_pool_down_a_video_is_cleaned_on_replicate_and_its_page_says_so(
    replicate, dead_pool, live_stack, open_page, tmp_path: Path
):
    clip = make_clip(tmp_path / "harbour.mp4", seconds=2, width=288, height=512)
    page = open_page("gina")
    page.goto("/accounts/signup/")
    sign_up(page, "gina@example.com")

    page.locator(".drop-zone").set_input_files([str(clip)])
    expect(page.locator(".upload-list .upload-item")).to_contain_text("ready", timeout=30_000)
    page.get_by_label("I own these videos or have the right to edit them").check()
    page.get_by_role("button", name="Remove watermarks").click()
    expect(page.get_by_text("1 video added")).to_be_visible()

    page.get_by_role("link", name="harbour.mp4").click()
    expect(page.get_by_role("heading", name="Video harbour.mp4")).to_be_visible()
    expect(page.locator("#job-status .badge")).to_have_text("Done", timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_test_id("where-it-is")).to_have_text("Cleaned on Replicate.")
    # Files could still be cleaned all along: no banner told anyone otherwise.
    expect(page.get_by_test_id("outage-file")).to_have_count(0)
    expect(balance_chip(page)).to_have_text("20 available · low")

    job = Job.objects.get()
    assert (job.state, job.provider, job.provider_server) == (JobState.SUCCEEDED, "replicate", "")
    assert job.provider_cost_micros is not None
    [prediction] = replicate.seen()["predictions"]
    assert prediction["id"] == job.task_id
    assert not SwcServer.objects.get(url=dead_pool).healthy
    assert ProviderAlert.objects.get(provider="swc", resolved_at=None).kind == "down"
