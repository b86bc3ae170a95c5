"""Routing drills: file jobs over two SWC simulators and the Replicate simulator, all over real
sockets, while one side or both go down or fill up. The app's side runs in-process (tasks from
the real broker, the dispatcher's rounds) behind a live server that serves Replicate the
signed originals and takes its signed webhooks. Every drill ends with each job settled
exactly once and `reconcile` clean."""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from pytest_django.live_server_helper import LiveServer

from apps.billing import ledger
from apps.jobs.models import Job, JobState, Upload
from apps.removal.models import ProviderAlert
from apps.simulators.replicate import ReplicateSimulator
from tests.replicate import PRICE, SIM_TOKEN
from tests.swc import Pool, details, file_jobs, run_until, settled_once
from tests.uploads import clip_bytes, post_videos

pytestmark = [pytest.mark.drill, pytest.mark.django_db(transaction=True)]


@dataclass
class Routed:
    pool: Pool
    replicate: ReplicateSimulator

    def predictions(self) -> int:
        return len(self.replicate.seen()["predictions"])


@pytest.fixture
def routed(pool: Pool, make_replicate_simulator, settings, live_server: LiveServer) -> Routed:
    """Files go to the pool first, then Replicate (the deployment's default policy)."""
    simulator = make_replicate_simulator(api_token=SIM_TOKEN, processing_seconds=0.3)
    settings.FILE_PROVIDERS = ["swc", "replicate"]
    settings.REPLICATE_SIMULATOR = True
    settings.REPLICATE_BASE_URL = simulator.url
    settings.REPLICATE_API_TOKEN = SIM_TOKEN
    settings.REPLICATE_WEBHOOK_SECRET = ""  # fetched from the simulator
    settings.REPLICATE_PRICE_PER_SECOND = PRICE
    # Replicate fetches the signed original from the app and calls back to it.
    settings.PUBLIC_BASE_URL = live_server.url
    settings.PROVIDER_PROBE_SECONDS = 1
    return Routed(pool, simulator)


def providers_of(jobs: list[Job]) -> Counter[str]:
    return Counter(
        Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("provider", flat=True)
    )


def all_succeeded(jobs: list[Job]) -> None:
    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED, details(job)


@pytest.mark.parametrize("outage", ["model_gone", "down"])
def test_with_replicate_down_file_jobs_stay_on_the_pool(
    routed, clip, alice_membership, drive, settings, outage
):
    settings.SWC_OVERFLOW_WAIT_SECONDS = 0  # anything the pool cannot start at once overflows
    routed.pool.start({}, {})
    if outage == "model_gone":
        routed.replicate.configure(model_gone=True)  # 404 for the model: it takes nothing
    else:
        routed.replicate.stop()  # nothing answers at all
    jobs = file_jobs(alice_membership, clip, count=6)

    drive(jobs)

    all_succeeded(jobs)
    assert providers_of(jobs) == {"swc": 6}
    assert routed.predictions() == 0
    alert = ProviderAlert.objects.get(provider="replicate", resolved_at=None)
    assert alert.kind == outage
    for job in jobs:
        assert job.attempts == 1  # a send Replicate never took is no try
        assert job.provider_cost_micros is not None  # GPU time on our server
    settled_once(*jobs)


def test_with_the_whole_pool_down_file_jobs_go_to_replicate(
    routed, clip, alice_membership, drive, login, alice
):
    routed.pool.start({}, {})
    for simulator in routed.pool.simulators:
        simulator.stop()
    jobs = file_jobs(alice_membership, clip, count=4)

    drive(jobs)

    all_succeeded(jobs)
    assert providers_of(jobs) == {"replicate": 4}
    assert routed.predictions() == 4  # one prediction each: nothing was sent twice
    assert ProviderAlert.objects.get(provider="swc", resolved_at=None).kind == "down"
    for job in jobs:
        # A send that never reached a server does not count as a try.
        assert job.attempts == 1
        assert job.provider_server == ""
        assert job.provider_cost_micros is not None
        assert job.provider_cost_micros > 0
    page = login(alice).get(jobs[0].get_absolute_url()).text
    assert "Cleaned on Replicate." in page
    settled_once(*jobs)


def test_a_saturated_pool_overflows_to_replicate(routed, clip, alice_membership, drive, settings):
    """Two servers taking two videos each, 2 s a video: past 2 s of expected wait, new files
    go to Replicate; the pool still cleans its share."""
    settings.SWC_SECONDS_PER_VIDEO = 2
    settings.SWC_OVERFLOW_WAIT_SECONDS = 2
    routed.pool.start({"seconds_per_video": 1.5}, {"seconds_per_video": 1.5})
    jobs = file_jobs(alice_membership, clip, count=12)

    drive(jobs, seconds=120)

    all_succeeded(jobs)
    shares = providers_of(jobs)
    assert shares["swc"] >= 4  # it started as many as it had places
    assert shares["replicate"] >= 1
    assert shares["swc"] + shares["replicate"] == 12
    assert routed.predictions() == shares["replicate"]
    settled_once(*jobs)


def test_with_both_down_files_are_refused_at_submission_and_nothing_is_held(
    routed, clip, alice_membership, alice, login, step: Callable[[], None], drive, tmp_path
):
    routed.pool.start({}, {})
    for simulator in routed.pool.simulators:
        simulator.stop()
    routed.replicate.configure(model_gone=True)
    [first] = file_jobs(alice_membership, clip)  # sent before anyone knew
    run_until(
        step,
        lambda: ProviderAlert.objects.filter(resolved_at=None).count() == 2,
        "both to be found down",
    )
    first.refresh_from_db()
    assert first.state == JobState.QUEUED  # waiting, not failed: it went nowhere
    team = alice_membership.team
    before = (ledger.available_credits(team), Job.objects.count())

    page = post_videos(login(alice), alice, [("later.mp4", clip_bytes(tmp_path))])

    assert (
        "Uploaded files cannot be cleaned right now; please try again in a little while. "
        "Nothing was charged." in page.text
    )
    assert (ledger.available_credits(team), Job.objects.count()) == before
    assert Upload.objects.count() == 1  # the checked file waits in the form

    # Replicate comes back: its probe clears the alert and the waiting video goes there.
    routed.replicate.configure(model_gone=False)
    drive([first])
    first.refresh_from_db()
    assert (first.state, first.provider) == (JobState.SUCCEEDED, "replicate")
    settled_once(first)
