"""The routing policy: which provider takes a job, staff's switch, the banner, and what each
video cost us. Drills with the Replicate simulator are in `test_routing_drills.py`."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.billing import ledger
from apps.jobs import dispatcher, submission
from apps.jobs.models import Job, JobState, Upload
from apps.removal import routing
from apps.removal.base import InputKind
from apps.removal.models import LocalTask, PoolTask, ProviderAlert, ProviderSwitch
from apps.removal.registry import NoProvider, check_policy
from apps.removal.swc import pool as swc_pool
from config.env import env_micros
from tests.stack import SORA_LINK
from tests.swc import details, file_jobs, run_until, settled_once
from tests.uploads import at, clip_bytes, post_videos

pytestmark = pytest.mark.django_db(transaction=True)

TEN_SERVERS = [{"url": f"http://10.0.0.{n}:5344", "authorization": ""} for n in range(1, 11)]


# --- The policy ----------------------------------------------------------------------------------
def test_a_policy_naming_a_provider_there_is_not_stops_the_app(settings):
    settings.FILE_PROVIDERS = ["swc", "replicat"]
    with pytest.raises(ImproperlyConfigured, match="FILE_PROVIDERS names 'replicat'"):
        check_policy()

    settings.FILE_PROVIDERS = ["swc"]
    settings.LINK_PROVIDERS = ["kie", "kie"]
    with pytest.raises(ImproperlyConfigured, match="LINK_PROVIDERS names a provider twice"):
        check_policy()


def test_prices_in_dollars_become_whole_millionths_or_stop_the_app(monkeypatch):
    monkeypatch.setenv("SWC_PRICE_PER_GPU_HOUR", "0.79")
    assert env_micros("SWC_PRICE_PER_GPU_HOUR", "1") == 790_000
    monkeypatch.setenv("SWC_PRICE_PER_GPU_HOUR", "0.0000125")
    with pytest.raises(ImproperlyConfigured, match="to a millionth of a dollar"):
        env_micros("SWC_PRICE_PER_GPU_HOUR", "1")
    for wrong in ("-1", "NaN", "one dollar"):
        monkeypatch.setenv("SWC_PRICE_PER_GPU_HOUR", wrong)
        with pytest.raises(ImproperlyConfigured):
            env_micros("SWC_PRICE_PER_GPU_HOUR", "1")


def test_the_pool_keeps_only_the_files_it_would_start_within_the_overflow_wait(
    settings, alice_membership, clip
):
    """Two servers taking two each, 10 s a video: with four videos on them, the next file
    would wait 15 s; a 30 s limit keeps two more in line for the pool and no more."""
    settings.SWC_SERVERS = TEN_SERVERS[:2]
    settings.FILE_PROVIDERS = ["swc"]  # the overflow itself is drilled with Replicate
    settings.SWC_SECONDS_PER_VIDEO = 10
    settings.SWC_OVERFLOW_WAIT_SECONDS = 30
    ledger.grant(team=alice_membership.team, credits=1000, key="g", memo="test")
    assert swc_pool.expected_wait() == 0
    jobs = file_jobs(alice_membership, clip, count=4)
    for job in jobs:
        assert swc_pool.book_server(str(job.public_id)) is not None

    assert swc_pool.expected_wait() == 15.0
    assert swc_pool.expected_wait(ahead=2) == 25.0
    assert swc_pool.expected_wait(ahead=3) == 30.0
    assert swc_pool.room_to_wait() == 4  # the 5th file would wait 35 s

    [share] = routing.split(InputKind.FILE, 9, in_hand={})
    assert (share.provider.name, share.send, share.keep) == ("swc", 0, 4)

    settings.SWC_OVERFLOW_WAIT_SECONDS = 0
    assert swc_pool.room_to_wait() == 0
    # The first video is done: its place on the server frees.
    PoolTask.objects.filter(reference=str(jobs[0].public_id)).update(
        ended_at=timezone.now(), outcome=PoolTask.Outcome.FINISHED
    )
    [share] = routing.split(InputKind.FILE, 9, in_hand={})
    assert (share.send, share.keep) == (1, 0)


def test_files_our_remover_would_not_start_within_the_overflow_wait_go_on_to_replicate(
    settings, alice_membership, clip
):
    """The deployment's policy with the pool full and the remover's one process busy, 30 s a
    video: two files would start within 60 s there and wait for it; the rest go to Replicate
    now. (The remover used to keep every file that overflowed from the pool, however long its
    line: in the soak, 295 files waited for it until they timed out, Replicate idle.)"""
    settings.SWC_SERVERS = TEN_SERVERS[:1]
    settings.FILE_PROVIDERS = ["swc", "local", "replicate"]
    settings.REPLICATE_API_TOKEN = "r8_token"
    settings.REMOVER_PROCESSES = 1
    settings.REMOVER_SECONDS_PER_VIDEO = 30
    settings.SWC_OVERFLOW_WAIT_SECONDS = 60
    ledger.grant(team=alice_membership.team, credits=1000, key="g", memo="test")
    for n in range(settings.SWC_MAX_IN_FLIGHT):
        assert swc_pool.book_server(f"another team's video {n}") is not None
    LocalTask.objects.create(reference="another", input_name="x.mp4", state=LocalTask.State.RUNNING)
    jobs = file_jobs(alice_membership, clip, count=6)

    assert dispatcher.poll_due_jobs(run_seconds=0) == 4

    rows = Job.objects.filter(pk__in=[job.pk for job in jobs]).order_by("pk")
    # The oldest two wait in line (for whichever of ours frees first), the rest went out.
    assert [(job.state, job.provider) for job in rows] == [
        (JobState.QUEUED, "swc"),
        (JobState.QUEUED, "swc"),
    ] + [(JobState.QUEUED, "replicate")] * 4
    # Those that went out are claimed (not due again until their send's lease runs out).
    due = set(Job.objects.due(timezone.now()).values_list("pk", flat=True))
    assert [job.pk in due for job in rows] == [True] * 2 + [False] * 4


# --- Submission ---------------------------------------------------------------------------------
def test_files_are_refused_with_the_reason_when_no_provider_can_take_them(
    settings, alice, login, tmp_path
):
    settings.SWC_SERVERS = TEN_SERVERS[:1]
    settings.FILE_PROVIDERS = ["swc", "replicate"]
    settings.REPLICATE_API_TOKEN = "r8_token"
    ProviderAlert.objects.create(provider="swc", kind="down", message="No server answers.")
    ProviderAlert.objects.create(provider="replicate", kind="model_gone", message="404")
    team = alice.memberships.get().team
    before = ledger.available_credits(team)

    page = post_videos(login(alice), alice, [("mine.mp4", clip_bytes(tmp_path))])

    assert page.status_code == 200
    assert (
        "Uploaded files cannot be cleaned right now; please try again in a little while. "
        "Nothing was charged." in page.text
    )
    assert "Replicate" not in page.text
    assert "our cleaning servers" not in page.text
    assert not Job.objects.exists()
    assert ledger.available_credits(team) == before
    assert Upload.objects.count() == 1  # the checked file waits in the form


def test_customers_read_what_they_can_do_and_staff_every_reason_when_a_kind_is_out(
    settings, alice, caplog
):
    settings.SWC_SERVERS = TEN_SERVERS[:1]
    settings.FILE_PROVIDERS = ["swc"]
    routing.switch(name="swc", enabled=False, reason="GPU driver upgrade", by=alice)
    ProviderAlert.objects.create(provider="kie", kind="unauthorized", message="401")

    with pytest.raises(NoProvider) as files:
        routing.accepting(InputKind.FILE)
    with pytest.raises(NoProvider) as links:
        routing.accepting(InputKind.LINK)

    assert str(files.value) == (
        "Uploaded files cannot be cleaned right now; please try again in a little while. "
        "Nothing was charged."
    )
    assert str(links.value) == (
        "Sora links cannot be cleaned right now; please try again in a little while. "
        "Nothing was charged."
    )
    reasons = [record.reasons for record in caplog.records if hasattr(record, "reasons")]
    assert reasons == [
        "our cleaning servers are switched off by our team for now",
        "Kie is unavailable",
    ]


def test_links_are_refused_while_kie_is_paused(sim_stack, alice_membership):
    """A pause has no end in sight: a new link would only wait to be refunded."""
    ProviderAlert.objects.create(provider="kie", kind="paused", message="paused")

    with pytest.raises(routing.ProviderPaused):
        submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    assert Job.objects.count() == 0
    [outage] = routing.outages()
    assert outage.headline.startswith("Links cannot be cleaned right now: our link provider")


def test_links_wait_for_kie_under_maintenance_rather_than_being_refused(
    sim_stack, alice_membership
):
    """Maintenance is "no room right now": the job is taken and waits."""
    ProviderAlert.objects.create(provider="kie", kind="maintenance", message="maintenance")

    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    assert job.state == JobState.QUEUED
    [outage] = routing.outages()
    assert outage.headline == "Kie is under maintenance."
    assert outage.advice.startswith("Your videos wait and go out when it is back.")


# --- The banner ----------------------------------------------------------------------------------
def test_the_dashboard_says_plainly_when_files_cannot_be_processed(settings, alice, login):
    settings.SWC_SERVERS = TEN_SERVERS[:1]
    settings.FILE_PROVIDERS = ["swc"]
    client = login(alice)
    assert 'data-testid="outage-file"' not in client.get(at(alice, "jobs:dashboard")).text

    routing.switch(name="swc", enabled=False, reason="moving racks", by=alice)
    page = client.get(at(alice, "jobs:dashboard")).text

    assert 'data-testid="outage-file"' in page
    assert "Uploaded files cannot be cleaned right now; please try again in a little while." in page
    assert "switched off" not in page
    assert "New uploaded files are refused until then, and nothing is charged for them." in page
    assert "moving racks" not in page  # staff's reason is for staff

    routing.switch(name="swc", enabled=True, reason="racks moved", by=alice)
    assert 'data-testid="outage-file"' not in client.get(at(alice, "jobs:dashboard")).text


# --- Failover within what is set up today: the pool, switched off and on -----------------------
def test_a_switched_off_pool_finishes_what_it_runs_and_sends_nothing_new_until_it_is_back(
    pool, clip, alice_membership, step, drive, alice, settings
):
    settings.SWC_MAX_IN_FLIGHT = 1
    pool.start({"seconds_per_video": 1})
    running, waiting = file_jobs(alice_membership, clip, count=2)
    run_until(step, lambda: Job.objects.exclude(task_id="").exists(), "a video on the server")
    running.refresh_from_db()
    assert running.task_id
    assert waiting.state == JobState.QUEUED

    routing.switch(name="swc", enabled=False, reason="maintenance window", by=alice)
    run_until(
        step, lambda: Job.objects.filter(pk=running.pk, state=JobState.SUCCEEDED).exists(), "end"
    )
    for _ in range(3):
        step()
    waiting.refresh_from_db()
    assert waiting.state == JobState.QUEUED  # nobody else takes files here: it waits

    routing.switch(name="swc", enabled=True, reason="done", by=alice)
    drive([waiting])
    waiting.refresh_from_db()
    assert waiting.state == JobState.SUCCEEDED, details(waiting)
    settled_once(running, waiting)


# --- Who cleaned it, and what it cost us ------------------------------------------------------
def test_a_video_cleaned_by_the_pool_costs_its_gpu_time_and_names_no_server_to_customers(
    pool, clip, alice_membership, drive, alice, login, settings
):
    settings.SWC_PRICE_PER_GPU_HOUR_MICROS = 3_600_000  # $3.60 an hour: a micro-dollar a ms
    pool.start({"seconds_per_video": 0.4})
    [job] = file_jobs(alice_membership, clip)

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.provider_cost_ms is not None
    assert job.submitted_at is not None
    assert job.finished_at is not None
    # The run as our polls saw it: some time, and no more than the job was away.
    assert 0 < job.provider_cost_ms <= (job.finished_at - job.submitted_at).total_seconds() * 1000
    assert job.provider_cost_micros == job.provider_cost_ms
    assert swc_pool.gpu_cost_micros(1) == 1
    assert job.cleaned_by == "by our GPU servers"
    page = login(alice).get(job.get_absolute_url()).text
    assert "Cleaned by our GPU servers." in page
    assert "gpu-1" not in page
    assert "127.0.0.1" not in page
    settled_once(job)


def test_a_link_cleaned_by_kie_costs_its_fixed_price_and_says_so(
    sim_stack, alice_membership, drive, alice, login
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.provider_cost_micros == 50_000
    assert job.margin_micros == 0  # 10 credits at $0.005 are Kie's $0.05
    assert "Cleaned by Kie.ai." in login(alice).get(job.get_absolute_url()).text


# --- Staff --------------------------------------------------------------------------------------
def staff_with(*codenames: str) -> User:
    person = User.objects.create_user(f"{'-'.join(codenames)}@unmark.example", is_staff=True)
    person.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return person


def test_staff_switch_a_provider_off_only_with_a_reason_and_it_is_recorded(login, settings):
    settings.SWC_SERVERS = TEN_SERVERS[:1]
    operator = staff_with("view_providerswitch", "change_providerswitch")
    client = login(operator)
    listing = client.get(reverse("admin:removal_providerswitch_changelist"))
    assert listing.status_code == 200
    swc = ProviderSwitch.objects.get(provider="swc")
    url = reverse("admin:removal_providerswitch_switch", args=[swc.pk])

    refused = client.post(url, {"reason": ""})
    assert refused.status_code == 200
    assert "This field is required" in refused.text
    assert ProviderSwitch.objects.get(provider="swc").enabled

    client.post(url, {"reason": "GPU 2 overheating"})
    swc.refresh_from_db()
    assert (swc.enabled, swc.reason, swc.changed_by) == (False, "GPU 2 overheating", operator)
    listing = client.get(reverse("admin:removal_providerswitch_changelist")).text
    assert "GPU 2 overheating" in listing
    assert "Switch on…" in listing


def test_view_only_staff_cannot_switch_a_provider(login, settings):
    settings.SWC_SERVERS = TEN_SERVERS[:1]
    clerk = login(staff_with("view_providerswitch"))
    clerk.get(reverse("admin:removal_providerswitch_changelist"))
    swc = ProviderSwitch.objects.get(provider="swc")

    answer = clerk.post(
        reverse("admin:removal_providerswitch_switch", args=[swc.pk]), {"reason": "because"}
    )

    assert answer.status_code == 403
    assert ProviderSwitch.objects.get(provider="swc").enabled


def test_staff_see_cost_and_margin_per_job_and_for_a_date_range(login, alice_membership):
    ledger.grant(team=alice_membership.team, credits=1000, key="g", memo="test")
    now = timezone.now()

    def job(state: JobState, provider: str, cost: int | None, days_ago: int = 0) -> Job:
        made = Job.objects.create(
            team=alice_membership.team,
            provider=provider,
            credits=10,
            state=state,
            provider_cost_micros=cost,
        )
        Job.objects.filter(pk=made.pk).update(created_at=now - timedelta(days=days_ago))
        return made

    job(JobState.SUCCEEDED, "kie", 50_000)
    job(JobState.SUCCEEDED, "swc", 444)
    job(JobState.FAILED, "swc", 1_000)  # failed: charged nothing, cost us all the same
    job(JobState.SUCCEEDED, "swc", 444, days_ago=40)  # outside the range
    staff = login(staff_with("view_job"))

    listing = staff.get(reverse("admin:jobs_job_changelist")).text
    assert "$0.0496" in listing  # 0.05 - 0.000444, per job
    assert "-$0.0010" in listing
    page = staff.get(
        reverse("admin:jobs_job_costs"),
        {"start": (now - timedelta(days=7)).date(), "end": now.date()},
    )

    assert page.status_code == 200
    total = page.context["total"]
    assert (total["videos"], total["charged_videos"]) == (3, 2)
    assert total["charged"] == "$0.1000"
    assert total["cost"] == f"${Decimal(51_444) / 1_000_000:,.4f}"
    assert total["margin"] == "$0.0486"  # 0.1 - 0.051444
    assert {row["name"]: row["videos"] for row in page.context["rows"]} == {"kie": 1, "swc": 2}


def test_a_backwards_date_range_is_refused_and_people_without_job_access_get_nothing(login):
    staff = login(staff_with("view_job"))
    page = staff.get(reverse("admin:jobs_job_costs"), {"start": "2026-12-02", "end": "2026-12-01"})
    assert "The range must start on or before its last day." in page.text

    nobody = login(staff_with("view_wallet"))
    assert nobody.get(reverse("admin:jobs_job_costs")).status_code == 403
