"""The job pipeline end to end: real client, real simulator over sockets, real broker messages.

Tasks run in this process as a worker would run them (`run_tasks` drains the broker); the
poll clock is advanced by making waiting jobs due at once instead of sleeping.
"""

import hashlib
import time
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from apps.billing import ledger
from apps.billing.models import LedgerEntry, Wallet
from apps.jobs import dispatcher, pipeline, queue, submission
from apps.jobs.models import Job, JobEvent, JobState
from apps.jobs.views import callbacks
from apps.removal.models import ProviderAlert
from apps.simulators.kie import SAMPLE_MP4
from tests.stack import SORA_LINK

pytestmark = pytest.mark.django_db(transaction=True)

OTHER_LINK = "https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef"


def wallet(team) -> Wallet:
    return Wallet.objects.get(team=team)


def settle_kinds(job: Job) -> list[str]:
    return sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))


def test_a_link_goes_all_the_way_to_a_stored_video_and_is_charged_once(
    sim_stack, alice_membership, drive
):
    before = wallet(alice_membership.team)
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    with default_storage.open(str(job.result_file.name), "rb") as stored:
        delivered = stored.read()
    # The provider's video, given its Content Credentials: the digest is of what people get.
    assert job.result_size == len(delivered)
    assert len(delivered) > len(SAMPLE_MP4.read_bytes())
    assert job.result_sha256 == hashlib.sha256(delivered).hexdigest()
    assert job.credentials is not None
    assert job.credentials["actions"] == ["c2pa.opened", "c2pa.edited"]
    with default_storage.open(str(job.result_poster.name), "rb") as poster:
        assert poster.read(3) == b"\xff\xd8\xff"  # a JPEG frame of the result
    after = wallet(alice_membership.team)
    assert (after.balance, after.held) == (before.balance - 10, 0)
    assert settle_kinds(job) == ["capture", "hold"]
    steps = [event.to_state for event in job.events.all()]
    assert steps[:2] == ["queued", "submitted"]
    assert steps[-2:] == ["downloading", "succeeded"]


def test_a_kie_failure_fails_the_job_in_plain_words_and_releases_the_credits(
    sim_stack, alice_membership, drive
):
    sim_stack.simulator.configure(failure_rate=1.0)
    before = wallet(alice_membership.team)
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.failure_message.startswith("Kie could not remove the watermark")
    assert "Nothing was charged" in job.failure_message
    after = wallet(alice_membership.team)
    assert (after.balance, after.held) == (before.balance, 0)
    assert settle_kinds(job) == ["hold", "release"]
    assert not job.result_file


def test_without_callbacks_the_poller_finishes_the_job(sim_stack, alice_membership, drive):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.checks >= 1


def test_duplicate_callbacks_lead_to_one_download_and_one_capture(
    sim_stack, alice_membership, run_tasks, client, settings
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()  # sends it to Kie
    job.refresh_from_db()
    sim_stack.wait_until_done(job.task_id)
    url = reverse("jobs:callback", args=["kie", job.callback_token])
    body = sim_stack.callback_body(job.task_id)

    answers = [client.post(url, body, content_type="application/json") for _ in range(5)]
    run_tasks()
    run_tasks()

    assert [a.json() for a in answers] == [{"code": 200, "msg": "success"}] * 5
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert settle_kinds(job) == ["capture", "hold"]
    assert sim_stack.simulator.seen()["tasks"][0]["resultFetches"] == 1


def test_a_callback_brings_the_next_check_within_seconds_so_its_lost_status_query_costs_seconds(
    sim_stack, alice_membership, run_tasks, client, monkeypatch
):
    monkeypatch.setattr(callbacks, "CALLBACK_CHECK_SECONDS", 1)
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()  # sends it to Kie
    job.refresh_from_db()
    fallback_poll = timezone.now() + timedelta(seconds=40)  # as when a callback is expected
    Job.objects.filter(pk=job.pk).update(next_check_at=fallback_poll)
    sim_stack.wait_until_done(job.task_id)

    called_back_at = timezone.now()
    response = client.post(
        reverse("jobs:callback", args=["kie", job.callback_token]),
        sim_stack.callback_body(job.task_id),
        content_type="application/json",
    )
    run_tasks.purge()  # the worker holding the status query (and the poller) was killed

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.next_check_at is not None
    assert called_back_at < job.next_check_at <= called_back_at + timedelta(seconds=1.5)
    time.sleep(max(0.0, (job.next_check_at - timezone.now()).total_seconds()) + 0.05)
    dispatcher.poll_due_jobs(run_seconds=0)  # the next poller's round
    run_tasks()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.finished_at is not None
    assert job.finished_at - called_back_at < timedelta(seconds=5)


def test_a_callback_with_an_unknown_token_is_404_and_changes_nothing(
    sim_stack, alice_membership, run_tasks, client
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()

    response = client.post(
        reverse("jobs:callback", args=["kie", "forged-token"]),
        {"data": {"taskId": "x"}},
        content_type="application/json",
    )

    assert response.status_code == 404
    assert run_tasks() == 0
    job.refresh_from_db()
    assert job.state == JobState.SUBMITTED


def test_a_callback_naming_another_task_is_refused(sim_stack, alice_membership, run_tasks, client):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()

    response = client.post(
        reverse("jobs:callback", args=["kie", job.callback_token]),
        {"code": 200, "data": {"taskId": "someone-elses-task"}},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert run_tasks() == 0


def test_a_paused_kie_holds_jobs_without_charge_and_raises_an_alert(
    sim_stack, alice_membership, run_tasks, login, alice
):
    sim_stack.simulator.configure(paused=True)
    before = wallet(alice_membership.team)
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    run_tasks()

    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
    assert wallet(alice_membership.team).held == before.held + 10
    alert = ProviderAlert.objects.get()
    assert (alert.kind, alert.resolved_at) == ("paused", None)
    client = login(alice)
    links_box = client.get(alice_membership.team.get_absolute_url()).text.split("links-box")[1]
    assert "our link provider has paused Sora watermark removal" in links_box
    assert "Any already waiting go out when it is back" in links_box
    job_page = client.get(job.get_absolute_url()).text
    assert "Not sent: Kie has paused Sora watermark removal" in job_page
    assert "temporarily paused" not in job_page  # Kie's own words are for staff


def test_a_job_handed_out_as_an_alert_opens_is_not_sent_and_uses_no_attempt(
    sim_stack, alice_membership
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    # The dispatcher gave it to a send task; Kie went into maintenance before the task ran.
    ProviderAlert.objects.create(provider="kie", kind="maintenance", message="455")

    pipeline.send_job(job)

    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
    assert sim_stack.simulator.seen()["tasks"] == []
    last = job.events.last()
    assert last is not None
    assert last.detail == "Not sent: Kie takes no work right now."


def test_waiting_jobs_go_out_and_the_alert_clears_once_kie_takes_work_again(
    sim_stack, alice_membership, run_tasks, drive, settings
):
    settings.PROVIDER_PROBE_SECONDS = 1
    sim_stack.simulator.configure(paused=True)
    [first] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()
    sim_stack.simulator.configure(paused=False)
    time.sleep(1.1)

    drive([first])
    # Once a probe has found Kie back, new links are taken again.
    [second] = submission.submit_jobs(membership=alice_membership, links=[OTHER_LINK])
    drive([second])

    assert set(Job.objects.values_list("state", flat=True)) == {JobState.SUCCEEDED}
    assert ProviderAlert.objects.get().resolved_at is not None


def test_jobs_refused_by_kie_rate_limit_wait_their_turn_and_all_finish(
    sim_stack, alice_membership, drive
):
    sim_stack.simulator.configure(rate_limit=1)
    jobs = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK, OTHER_LINK])

    drive(jobs)

    states = set(Job.objects.values_list("state", flat=True))
    assert states == {JobState.SUCCEEDED}
    assert any("trying again" in e.detail for e in Job.objects.get(pk=jobs[1].pk).events.all())


@pytest.mark.parametrize(
    ("fault", "says"),
    [("html", "served text/html, not a video"), ("missing", "no longer exists")],
)
def test_a_bad_result_link_fails_the_job_and_leaves_no_file(
    sim_stack, alice_membership, drive, fault, says
):
    sim_stack.simulator.configure(result_fault=fault)
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert says in job.failure_message
    assert settle_kinds(job) == ["hold", "release"]
    assert sim_stack.stored_files() == []


def test_a_job_kie_never_finishes_is_given_up_and_refunded(sim_stack, alice_membership, run_tasks):
    sim_stack.simulator.configure(latency=(3600.0, 3600.0))
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()

    # Sixteen minutes later (the job's clock is moved, not the simulator's):
    sixteen_minutes_ago = timezone.now() - timedelta(minutes=16)
    Job.objects.filter(pk=job.pk).update(
        created_at=sixteen_minutes_ago,
        submitted_at=sixteen_minutes_ago,
        next_check_at=timezone.now(),
    )
    dispatcher.poll_due_jobs(run_seconds=0)
    run_tasks()

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.failure_code == "timeout"
    assert settle_kinds(job) == ["hold", "release"]


def test_results_are_deleted_after_retention_and_the_history_stays(
    sim_stack, alice_membership, drive
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    drive([job])
    job.refresh_from_db()
    name = str(job.result_file.name)
    steps = job.events.count()
    assert job.expires_at is not None

    with time_machine.travel(job.expires_at + timedelta(seconds=1), tick=False):
        assert dispatcher.expire_results() == 1

    job.refresh_from_db()
    assert job.state == JobState.EXPIRED
    assert not default_storage.exists(name)
    assert job.events.count() == steps + 1
    assert settle_kinds(job) == ["capture", "hold"]


def test_a_job_whose_send_was_lost_is_sent_by_the_poller(sim_stack, alice_membership, run_tasks):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks.purge()  # the broker lost the message

    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    dispatcher.poll_due_jobs(run_seconds=0)
    run_tasks()

    job.refresh_from_db()
    assert job.state in (JobState.SUBMITTED, JobState.PROCESSING)
    assert job.task_id


def test_the_poller_runs_alone(sim_stack, alice_membership):
    cache.add(queue.POLLER_LOCK, "someone-else", timeout=30)
    submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    Job.objects.update(next_check_at=timezone.now())

    assert dispatcher.poll_due_jobs(run_seconds=0) == 0
    cache.delete(queue.POLLER_LOCK)
    assert dispatcher.poll_due_jobs(run_seconds=0) == 1


def test_a_poller_out_of_time_with_work_due_starts_its_successor(
    sim_stack, alice_membership, run_tasks
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks.purge()
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now() + timedelta(seconds=5))

    dispatcher.poll_due_jobs(run_seconds=0.01)

    assert run_tasks.queue_size() == 1  # the successor poller, and nothing else
    assert run_tasks() == 1


def test_a_big_paste_is_sent_no_faster_than_kies_rate_limit(
    sim_stack, alice_membership, settings, run_tasks
):
    settings.KIE_CREATE_LIMIT = 3
    ledger.grant(team=alice_membership.team, credits=100, key="more", memo="test")
    links = [f"https://sora.chatgpt.com/p/s_{i:032x}" for i in range(1, 9)]

    jobs = submission.submit_jobs(membership=alice_membership, links=links)
    run_tasks()
    dispatcher.poll_due_jobs(run_seconds=0)
    run_tasks()

    states = list(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True))
    assert states.count(JobState.SUBMITTED) == 3
    assert states.count(JobState.QUEUED) == 5
    # None was refused by the limiter: the waiting ones were never sent.
    assert not JobEvent.objects.filter(detail__contains="trying again").exists()


def test_a_result_server_that_stops_answering_fails_the_job_after_a_few_tries(
    sim_stack, alice_membership, run_tasks
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()
    job.refresh_from_db()
    job.move(
        JobState.DOWNLOADING, result_url=f"{sim_stack.simulator.url}/results/{job.task_id}.mp4"
    )
    sim_stack.simulator.stop()  # connection refused from now on

    for _ in range(5):
        pipeline.download_job(Job.objects.select_related("team").get(pk=job.pk))

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.download_attempts == 3
    assert "could not be saved" in job.failure_message
    assert settle_kinds(job) == ["hold", "release"]
    assert sim_stack.stored_files() == []


def test_a_worker_that_dies_on_every_try_cannot_keep_a_job_saving_forever(
    sim_stack, alice_membership, run_tasks
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()
    job.refresh_from_db()
    # Three tries that started and never reported back (killed workers, task timeouts).
    job.move(JobState.DOWNLOADING, result_url="https://example.com/out.mp4", download_attempts=3)

    pipeline.download_job(job)

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert settle_kinds(job) == ["hold", "release"]
