"""Sending deliveries to a real receiver over a socket, which checks them with the
`standardwebhooks` package: signatures and rotation, retries, giving up, turning endpoints off."""

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from prometheus_client import REGISTRY
from standardwebhooks.webhooks import WebhookVerificationError

from apps import taskqueue
from apps.accounts.models import TeamEvent, TeamEventKind
from apps.webhooks import sending, services
from apps.webhooks.models import RETRY_SCHEDULE, Delivery, DeliveryState, Endpoint, EventType
from tests.factories import make_endpoint
from tests.threads import run_at_once
from tests.webhooks.receiver import Answer

pytestmark = pytest.mark.django_db

PAYLOAD = {"job": {"id": "5b0c…", "state": "succeeded"}}


def emit_one(endpoint: Endpoint) -> Delivery:
    [delivery_id] = services.emit(
        team_id=endpoint.team_id, event_type=EventType.JOB_SUCCEEDED, payload=PAYLOAD
    )
    return Delivery.objects.get(pk=delivery_id)


def wait_before_next(delivery: Delivery) -> float:
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None
    assert delivery.last_attempt_at is not None
    return (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()


def make_due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_a_message_arrives_signed_and_the_receiver_verifies_it(acme, receiver):
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)

    assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.SUCCEEDED

    arrived = receiver.last()
    assert arrived.path == "/hooks/unmark"
    assert arrived.verify(endpoint.secret) == {
        "type": "job.succeeded",
        "timestamp": delivery.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": PAYLOAD,
    }
    assert arrived.headers["webhook-id"] == delivery.message_id
    assert arrived.headers["webhook-id"].startswith("msg_")
    assert abs(int(arrived.headers["webhook-timestamp"]) - time.time()) < 5
    assert arrived.headers["content-type"] == "application/json"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("succeeded", 1, 200)
    assert delivery.response_excerpt == "thanks"
    assert delivery.delivered_at is not None
    assert delivery.lease_token == ""


def test_another_secret_does_not_verify_the_message(acme, receiver):
    endpoint = make_endpoint(acme, receiver.url())
    sending.deliver(delivery_id=emit_one(endpoint).pk)
    with pytest.raises(WebhookVerificationError):
        receiver.last().verify("whsec_" + "QUJD" * 8)


def test_during_a_rotation_both_secrets_sign_and_afterwards_only_the_new_one(
    acme, alice, receiver, settings
):
    settings.WEBHOOK_ROTATION_OVERLAP_HOURS = 24
    endpoint = make_endpoint(acme, receiver.url())
    old = endpoint.secret
    new = services.rotate_secret(endpoint=endpoint, actor=alice)
    assert new != old
    assert new.startswith("whsec_")

    sending.deliver(delivery_id=emit_one(endpoint).pk)
    during = receiver.last()
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert during.verify(old)["data"] == PAYLOAD  # a receiver not yet switched keeps working
    assert during.verify(new)["data"] == PAYLOAD

    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        sending.deliver(delivery_id=emit_one(endpoint).pk)
        after = receiver.last()
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        assert after.verify(new)["data"] == PAYLOAD
        with pytest.raises(WebhookVerificationError):
            after.verify(old)
    assert TeamEvent.objects.filter(team=acme, kind=TeamEventKind.WEBHOOK_SECRET_ROTATED).exists()


def test_failures_are_retried_on_the_schedule_until_a_2xx_arrives(acme, receiver):
    receiver.answer(500, Answer(status=503, body=b"down for maintenance"))
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)

    assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.PENDING
    wait = wait_before_next(delivery)
    assert 4.5 <= wait <= 5.5  # 5 s, with up to a tenth of jitter
    assert (delivery.attempts, delivery.last_status) == (1, 500)
    assert sending.deliver(delivery_id=delivery.pk) is None  # not due yet: nothing sent
    assert len(receiver.received) == 1

    make_due(delivery)
    assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.PENDING
    wait = wait_before_next(delivery)
    assert 270 <= wait <= 330  # 5 min
    assert delivery.response_excerpt == "down for maintenance"
    assert Endpoint.objects.get(pk=endpoint.pk).failing_since is not None

    make_due(delivery)
    assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.SUCCEEDED
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("succeeded", 3, 200)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # one message
    assert Endpoint.objects.get(pk=endpoint.pk).failing_since is None


def test_a_retry_is_a_task_due_at_its_time_not_at_the_next_sweep(
    acme, receiver, run_tasks, django_capture_on_commit_callbacks
):
    receiver.answer(Answer(status=503, body=b"down"))
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)
    run_tasks.purge()

    with django_capture_on_commit_callbacks(execute=True):
        assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.PENDING
    delivery.refresh_from_db()
    due = delivery.next_attempt_at
    assert due is not None

    # The workers' timer, a moment before the retry is due: nothing yet, and it wakes then.
    with time_machine.travel(due - timedelta(seconds=0.5), tick=False):
        assert 0.4 <= taskqueue._start_due_tasks() <= 0.5
    assert run_tasks() == 0
    with time_machine.travel(due, tick=False):
        taskqueue._start_due_tasks()
    with time_machine.travel(due):  # a worker takes it at once
        assert run_tasks() == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.SUCCEEDED, 2)
    assert len(receiver.received) == 2
    assert taskqueue._start_due_tasks() == taskqueue.HEARTBEAT_SECONDS  # nothing else is due


def test_only_2xx_counts_a_redirect_is_a_failure_and_is_not_followed(acme, receiver):
    receiver.answer(Answer(status=302, body=b""))
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)

    assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.PENDING
    delivery.refresh_from_db()
    assert delivery.last_status == 302
    assert len(receiver.received) == 1


def test_after_the_last_scheduled_attempt_the_delivery_fails(acme, receiver):
    receiver.answer(*[500] * len(RETRY_SCHEDULE))
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)

    for _ in range(len(RETRY_SCHEDULE)):
        make_due(delivery)
        sending.deliver(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("failed", 8, None)
    assert len(receiver.received) == 8
    assert Endpoint.objects.get(pk=endpoint.pk).enabled  # failing for hours, not days


def test_410_turns_the_endpoint_off_at_once_and_tells_the_managers_once(acme, receiver):
    receiver.answer(410)
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)
    waiting = emit_one(endpoint)

    assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.FAILED

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "410" in endpoint.disabled_reason
    assert Delivery.objects.get(pk=waiting.pk).state == DeliveryState.FAILED
    (message,) = mail.outbox
    assert sorted(message.to) == ["alice@example.com", "bob@example.com"]  # not carol
    assert endpoint.url in message.body
    assert "410 Gone" in message.body
    assert TeamEvent.objects.filter(team=acme, kind=TeamEventKind.WEBHOOK_DISABLED).count() == 1
    # Off means off: no new messages, nothing sent.
    assert services.emit(team_id=acme.pk, event_type=EventType.JOB_FAILED, payload={}) == []
    assert sending.disable(endpoint=endpoint, reason="again") is False
    assert len(mail.outbox) == 1


def test_an_endpoint_failing_for_days_is_turned_off_and_its_team_emailed_once(
    acme, receiver, settings
):
    settings.WEBHOOK_DISABLE_AFTER_DAYS = 5
    receiver.answer(*[500] * 4)
    endpoint = make_endpoint(acme, receiver.url())
    start = timezone.now()
    sending.deliver(delivery_id=emit_one(endpoint).pk)
    assert Endpoint.objects.get(pk=endpoint.pk).failing_since is not None

    with time_machine.travel(start + timedelta(days=4, hours=23)):
        sending.deliver(delivery_id=emit_one(endpoint).pk)
    assert Endpoint.objects.get(pk=endpoint.pk).enabled
    assert mail.outbox == []

    with time_machine.travel(start + timedelta(days=5, minutes=1)):
        assert sending.deliver(delivery_id=emit_one(endpoint).pk) == DeliveryState.FAILED
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "Every delivery has failed for 5 days."
    (message,) = mail.outbox
    assert message.subject.endswith(f"A webhook endpoint of {acme.name} was turned off")
    assert "Every delivery has failed for 5 days." in message.body
    assert endpoint.get_absolute_url() in message.body
    assert not Delivery.objects.filter(endpoint=endpoint, state=DeliveryState.PENDING).exists()


def test_one_success_resets_the_failing_clock(acme, receiver, settings):
    receiver.answer(500)
    endpoint = make_endpoint(acme, receiver.url())
    start = timezone.now()
    sending.deliver(delivery_id=emit_one(endpoint).pk)
    sending.deliver(delivery_id=emit_one(endpoint).pk)  # 200

    with time_machine.travel(start + timedelta(days=6)):
        receiver.answer(500)
        sending.deliver(delivery_id=emit_one(endpoint).pk)
    endpoint.refresh_from_db()
    assert endpoint.enabled  # failing for minutes, not days
    assert endpoint.failing_since is not None


def test_a_delivery_being_sent_is_not_sent_by_a_second_worker(acme, receiver):
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)
    # A worker claimed it a moment ago and is still waiting for the receiver.
    Delivery.objects.filter(pk=delivery.pk).update(
        lease_token="other", lease_until=timezone.now() + timedelta(seconds=30)
    )
    assert sending.deliver(delivery_id=delivery.pk) is None
    assert receiver.received == []
    # That worker died: once its lease runs out, the delivery is sent.
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now())
    assert sending.hand_out_due() == [delivery.pk]
    assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.SUCCEEDED


def taken_over_during_the_post(
    monkeypatch, delivery: Delivery, *, failing_since: datetime | None, **outcome: object
) -> None:
    """While this worker waits for the receiver its lease runs out, and another worker takes
    the delivery over and records its own `outcome` (and the endpoint's failing clock)."""
    real_post = sending.post

    def post(*args: Any, **kwargs: Any) -> sending.Answer:
        answer = real_post(*args, **kwargs)
        Delivery.objects.filter(pk=delivery.pk).update(**outcome)
        Endpoint.objects.filter(pk=delivery.endpoint_id).update(failing_since=failing_since)
        return answer

    monkeypatch.setattr(sending, "post", post)


def outcomes() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value("unmark_webhook_deliveries_total", {"outcome": outcome})
        or 0.0
        for outcome in ("delivered", "retrying", "gave_up")
    }


@pytest.mark.parametrize("status", [500, 410])
def test_a_worker_whose_lease_was_taken_over_records_nothing_of_its_failure(
    acme, receiver, settings, monkeypatch, status
):
    settings.WEBHOOK_DISABLE_AFTER_DAYS = 5
    receiver.answer(status)
    endpoint = make_endpoint(acme, receiver.url())
    # Failing for 6 days: this worker's failure alone would turn the endpoint off…
    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=6))
    delivery = emit_one(endpoint)
    # …but the worker that took over delivered it.
    taken_over_during_the_post(
        monkeypatch,
        delivery,
        failing_since=None,
        state=DeliveryState.SUCCEEDED,
        lease_token="",
        lease_until=None,
        last_status=204,
        delivered_at=timezone.now(),
    )
    before = outcomes()

    state = sending.deliver(delivery_id=delivery.pk)

    assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status) == (DeliveryState.SUCCEEDED, 204)
    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert endpoint.failing_since is None
    assert mail.outbox == []
    assert outcomes() == before
    assert state is None  # the delivery's state is the other worker's to tell


def test_a_worker_whose_lease_was_taken_over_records_nothing_of_its_success(
    acme, receiver, monkeypatch
):
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)
    # The worker that took over is still at it, the endpoint failing since its last attempts.
    failing_since = timezone.now() - timedelta(hours=2)
    taken_over_during_the_post(
        monkeypatch,
        delivery,
        failing_since=failing_since,
        lease_token="theirs",
        lease_until=timezone.now() + timedelta(seconds=30),
        last_status=500,
    )
    before = outcomes()

    state = sending.deliver(delivery_id=delivery.pk)

    assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status, delivery.lease_token) == (
        DeliveryState.PENDING,
        500,
        "theirs",
    )
    assert delivery.delivered_at is None
    assert Endpoint.objects.get(pk=endpoint.pk).failing_since == failing_since
    assert outcomes() == before
    assert state is None


def test_a_slow_receiver_is_given_up_on_at_the_timeout(acme, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.answer(Answer(delay=5))
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)

    started = time.monotonic()
    assert sending.deliver(delivery_id=delivery.pk) == DeliveryState.PENDING
    took = time.monotonic() - started

    assert took < 2
    delivery.refresh_from_db()
    assert delivery.last_status is None
    assert delivery.last_error == "No answer within 1 s."
    assert delivery.outcome == "No answer within 1 s."


def test_a_receiver_dripping_its_status_line_cannot_hold_a_worker_past_the_timeout(
    acme, receiver, settings
):
    # Each byte comes well within the per-read timeout; only the whole-exchange deadline stops it.
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.answer(Answer(drip=0.2))
    endpoint = make_endpoint(acme, receiver.url())

    started = time.monotonic()
    sending.deliver(delivery_id=emit_one(endpoint).pk)

    assert time.monotonic() - started < 1.8
    assert Delivery.objects.get(endpoint=endpoint).last_error == "No answer within 1 s."


def test_an_endless_answer_is_read_only_up_to_the_cap_and_the_deadline(acme, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.answer(Answer(trickle=0.05))
    endpoint = make_endpoint(acme, receiver.url())

    started = time.monotonic()
    state = sending.deliver(delivery_id=emit_one(endpoint).pk)

    assert time.monotonic() - started < 1.8
    assert state == DeliveryState.SUCCEEDED  # its 200 came in time
    excerpt = Delivery.objects.get(endpoint=endpoint).response_excerpt
    assert excerpt.startswith("..")
    assert excerpt.endswith("(cut off after 1 s)")


def test_a_huge_answer_is_cut_to_an_excerpt(acme, receiver):
    receiver.answer(Answer(body=b"x" * 2_000_000))
    endpoint = make_endpoint(acme, receiver.url())
    sending.deliver(delivery_id=emit_one(endpoint).pk)
    assert Delivery.objects.get(endpoint=endpoint).response_excerpt == "x" * 1000


def test_a_refused_connection_is_a_failed_attempt_in_plain_words(acme, receiver):
    endpoint = make_endpoint(acme, receiver.url())
    receiver.server.shutdown()
    receiver.server.server_close()

    assert sending.deliver(delivery_id=emit_one(endpoint).pk) == DeliveryState.PENDING
    assert Delivery.objects.get(endpoint=endpoint).last_error == (
        "The connection failed (connection refused)."
    )


def test_the_sweep_finds_what_is_due_and_nothing_else(acme, receiver):
    endpoint = make_endpoint(acme, receiver.url())
    due = emit_one(endpoint)
    later = emit_one(endpoint)
    Delivery.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    done = emit_one(endpoint)
    sending.deliver(delivery_id=done.pk)

    assert sending.hand_out_due() == [due.pk]
    # Handed to the queue: not handed out again by the next sweeps while the workers are busy…
    assert sending.hand_out_due() == []
    # …until that lease runs out (the task was lost), and any worker may take it meanwhile.
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert sending.hand_out_due() == [due.pk, later.pk]
    assert sending.deliver(delivery_id=due.pk) == DeliveryState.SUCCEEDED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_racing_for_one_delivery_send_it_once(acme, receiver):
    endpoint = make_endpoint(acme, receiver.url())
    delivery = emit_one(endpoint)

    outcomes = run_at_once(6, lambda _: sending.deliver(delivery_id=delivery.pk))

    assert sorted(outcomes, key=str) == [None] * 5 + [DeliveryState.SUCCEEDED]
    assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.SUCCEEDED, 1)


def test_old_finished_deliveries_leave_the_log_and_waiting_ones_stay(acme, receiver, settings):
    settings.WEBHOOK_LOG_RETENTION_DAYS = 30
    endpoint = make_endpoint(acme, receiver.url())
    done = emit_one(endpoint)
    sending.deliver(delivery_id=done.pk)
    waiting = emit_one(endpoint)
    Delivery.objects.update(created_at=timezone.now() - timedelta(days=31))
    recent = emit_one(endpoint)
    sending.deliver(delivery_id=recent.pk)

    assert sending.forget_old_deliveries() == 1

    assert sorted(Delivery.objects.values_list("pk", flat=True)) == [waiting.pk, recent.pk]


def test_each_attempt_is_counted_for_prometheus_by_its_outcome(acme, receiver):
    def count(outcome: str) -> float:
        value = REGISTRY.get_sample_value("unmark_webhook_deliveries_total", {"outcome": outcome})
        return value or 0.0

    before = {outcome: count(outcome) for outcome in ("retrying", "delivered")}
    receiver.answer(500)
    delivery = emit_one(make_endpoint(acme, receiver.url()))
    sending.deliver(delivery_id=delivery.pk)
    make_due(delivery)
    sending.deliver(delivery_id=delivery.pk)

    assert count("retrying") - before["retrying"] == 1
    assert count("delivered") - before["delivered"] == 1
