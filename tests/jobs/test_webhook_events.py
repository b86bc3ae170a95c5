"""A team's webhooks hear of its videos and credits through the real pipeline: the Kie
simulator over sockets, real broker messages run as a worker would, and a receiver on a
socket that verifies each message with the `standardwebhooks` package."""

from collections.abc import Iterator
from datetime import datetime

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.billing import tasks as billing_tasks
from apps.billing.models import Wallet
from apps.jobs import lifecycle, submission
from apps.jobs.models import Job, JobState
from apps.jobs.public import content_credentials
from apps.webhooks import tasks as webhook_tasks
from apps.webhooks.models import Delivery, DeliveryState, Endpoint, EventType
from tests.api.conftest import ApiClient, key_for
from tests.factories import make_endpoint
from tests.stack import SORA_LINK
from tests.webhooks.receiver import Receiver, start_receiver

pytestmark = pytest.mark.django_db(transaction=True)

OTHER_LINK = "https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef"


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    settings.SITE_URL = "https://unmark.example"
    receiver = start_receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def when(moment: datetime | None) -> str:
    """A time as the API and webhooks write it: ISO 8601 UTC to the millisecond."""
    return DjangoJSONEncoder().default(moment)


def messages(receiver: Receiver, endpoint: Endpoint) -> dict[str, list[dict]]:
    """What arrived, verified with the endpoint's secret, by event type."""
    found: dict[str, list[dict]] = {}
    for arrived in receiver.received:
        message = arrived.verify(endpoint.secret)
        found.setdefault(message["type"], []).append(message["data"])
    return found


def test_a_video_done_tells_job_succeeded_and_batch_finished_signed(
    sim_stack, alice_membership, drive, run_tasks, receiver
):
    team = alice_membership.team
    endpoint = make_endpoint(team, receiver.url())
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])
    run_tasks()  # what the job's end set off: the batch notice, the deliveries

    job.refresh_from_db()
    assert job.finished_at is not None
    got = messages(receiver, endpoint)
    assert sorted(got) == ["batch.finished", "job.succeeded"]
    [succeeded] = got["job.succeeded"]
    assert succeeded["team"] == {"id": str(team.public_id), "name": team.name}
    assert succeeded["job"] == {
        "id": str(job.public_id),
        "state": "succeeded",
        "stage": "Done",
        "progress": 100,
        "progress_is_estimate": False,
        "input": "link",
        "link": SORA_LINK,
        "file_name": None,
        "provider": job.provider,
        "created_by": "alice@example.com",
        "credits": {"reserved": 0, "charged": 10, "refunded": 0},
        "failure": None,
        "retry_of": None,
        "created_at": when(job.created_at),
        "submitted_at": when(job.submitted_at),
        "finished_at": when(job.finished_at),
        "has_result": True,
        "content_credentials": content_credentials(job.credentials),
    }
    assert succeeded["job"]["content_credentials"]["ai_generated"] is True
    # The one public shape: the API answers the same for this job, field for field.
    api_job = ApiClient(key_for(alice_membership.user, team)).get(f"/jobs/{job.public_id}")
    assert {
        name: value
        for name, value in api_job.json().items()
        if name not in ("result", "timeline")  # the detail's extras
    } == succeeded["job"]
    [batch] = got["batch.finished"]
    assert batch["batch"]["id"] == str(job.submission_id)
    assert (batch["batch"]["total"], batch["batch"]["succeeded"]) == (1, 1)
    assert [entry["id"] for entry in batch["batch"]["jobs"]] == [str(job.public_id)]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SUCCEEDED}


def test_a_failed_video_tells_job_failed_in_plain_words(
    sim_stack, alice_membership, drive, run_tasks, receiver
):
    sim_stack.simulator.configure(failure_rate=1.0)
    endpoint = make_endpoint(alice_membership.team, receiver.url(), [EventType.JOB_FAILED])
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])
    run_tasks()

    job.refresh_from_db()
    got = messages(receiver, endpoint)
    assert list(got) == ["job.failed"]  # only what it chose
    [failed] = got["job.failed"]
    assert failed["job"]["state"] == "failed"
    assert failed["job"]["credits"] == {"reserved": 0, "charged": 0, "refunded": 10}
    assert failed["job"]["failure"]["message"] == job.failure_message
    assert "Nothing was charged" in failed["job"]["failure"]["message"]


def test_a_batch_is_announced_once_when_its_last_video_ends(
    sim_stack, alice_membership, drive, run_tasks, receiver
):
    endpoint = make_endpoint(alice_membership.team, receiver.url(), [EventType.BATCH_FINISHED])
    jobs = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK, OTHER_LINK])

    drive(jobs)
    run_tasks()

    [batch] = messages(receiver, endpoint)["batch.finished"]
    assert (batch["batch"]["total"], batch["batch"]["succeeded"]) == (2, 2)
    assert batch["batch"]["not_succeeded"] == 0


def test_credits_falling_below_the_threshold_tell_credits_low_once(
    sim_stack, alice_membership, drive, run_tasks, receiver
):
    team = alice_membership.team
    Wallet.objects.filter(team=team).update(balance=30, held=0)
    Team.objects.filter(pk=team.pk).update(low_balance_threshold=30)
    endpoint = make_endpoint(team, receiver.url(), [EventType.CREDITS_LOW])

    first = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    run_tasks()
    second = submission.submit_jobs(membership=alice_membership, links=[OTHER_LINK])
    drive(first + second)
    run_tasks()

    [low] = messages(receiver, endpoint)["credits.low"]
    assert low["credits"] == {
        "available": 20,
        "threshold": 30,
        "threshold_credits": 30,
        "threshold_videos": 3,
        "videos_left": 2,
        "credits_per_video": 10,
    }
    assert low["team"]["id"] == str(team.public_id)
    assert low["url"].startswith("https://unmark.example/")


def test_a_move_that_is_rolled_back_announces_nothing(sim_stack, alice_membership, receiver):
    make_endpoint(alice_membership.team, receiver.url())
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    def fail_then_roll_back() -> None:
        with transaction.atomic():
            lifecycle.fail_job(Job.objects.get(pk=job.pk), code="test", message="Undone.")
            raise RuntimeError("the surrounding work failed")

    with pytest.raises(RuntimeError):
        fail_then_roll_back()

    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED
    assert not Delivery.objects.exists()


def test_the_minute_sweep_hands_due_retries_to_workers(alice_membership, run_tasks, receiver):
    endpoint = make_endpoint(alice_membership.team, receiver.url())
    receiver.answer(500)
    Team.objects.filter(pk=alice_membership.team_id).update(low_balance_threshold=1000)
    run_tasks.purge()
    billing_tasks.check_low_balance(alice_membership.team_id)  # emits credits.low
    run_tasks()  # its first attempt: 500
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 1)

    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    webhook_tasks.send_due_webhooks()
    run_tasks()

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.SUCCEEDED, 2)
    assert [r.verify(endpoint.secret)["type"] for r in receiver.received] == ["credits.low"] * 2


def test_a_video_canceled_by_its_team_is_not_news(sim_stack, alice_membership, receiver):
    make_endpoint(alice_membership.team, receiver.url(), [EventType.JOB_FAILED])
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    assert lifecycle.cancel_job(job)

    assert not Delivery.objects.exists()
