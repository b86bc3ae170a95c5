"""What the rest of the app does with webhooks: announce an event, manage a team's endpoints.

Where this sits: below jobs and billing, on accounts (import-linter's layers). Jobs and billing
are where events happen, so they call down into `emit` — inside the transaction that makes the
change, so the delivery rows (an outbox) commit with it or not at all. Each new delivery goes
to a worker of its own once that commits (`tasks.deliver_webhook`); each retry is a task of its
own too, due when the retry is (`deliver_at`); a sweep every minute hands out whatever is due
and was not sent (a task lost with its worker), as a safety net (`tasks.send_due_webhooks`).
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps import outbound, taskqueue
from apps.accounts.models import Team, TeamEventKind, User
from apps.accounts.services import record_team_event
from apps.outbound import Refusal
from apps.webhooks.models import TEST_EVENT, Delivery, DeliveryState, Endpoint, new_secret


def _announce_on_commit(deliveries: Iterable[Delivery]) -> list[int]:
    ids = [delivery.pk for delivery in deliveries]
    deliver_soon(ids)
    return ids


def deliver_soon(delivery_ids: Iterable[int]) -> None:
    """Each delivery to a worker of its own once the transaction commits, so one slow receiver
    holds up no other."""
    for delivery_id in delivery_ids:
        taskqueue.enqueue("apps.webhooks.tasks.deliver_webhook", delivery_id)


def deliver_at(delivery_id: int, at: datetime) -> None:
    """The delivery's next attempt, by a worker at `at` (to the second, not at the next sweep)."""
    taskqueue.enqueue_at("apps.webhooks.tasks.deliver_webhook", delivery_id, at=at)


def emit(*, team_id: int, event_type: str, payload: dict[str, Any]) -> list[int]:
    """Records a message for each of the team's endpoints that wants `event_type`; returns
    their ids. Call it inside the transaction of the change it tells of: a rolled-back change
    sends nothing, and they go out once it commits."""
    endpoints = [
        endpoint
        for endpoint in Endpoint.objects.filter(
            team_id=team_id, enabled=True, team__archived_at__isnull=True
        )
        if endpoint.wants(event_type)
    ]
    if not endpoints:
        return []
    now = timezone.now()
    deliveries = [
        Delivery(endpoint=endpoint, event_type=event_type, payload=payload, next_attempt_at=now)
        for endpoint in endpoints
    ]
    # One event is one message, whichever endpoints receive it: they share its id.
    for delivery in deliveries[1:]:
        delivery.message_id = deliveries[0].message_id
    created = Delivery.objects.bulk_create(deliveries)
    if any(delivery.pk is None for delivery in created):  # backends without RETURNING ids
        created = list(Delivery.objects.filter(message_id=deliveries[0].message_id))
    return _announce_on_commit(created)


# --- Endpoints -------------------------------------------------------------------------------


class UrlRefused(Exception):
    """The endpoint address cannot be used; the message says why, in plain words."""


_URL_REFUSALS = {
    Refusal.MALFORMED: "Enter a full address, such as https://example.com/hooks/unmark.",
    Refusal.PRIVATE: (
        "This address points into a private network (a private, loopback or link-local "
        "address). Use an address reachable from the internet."
    ),
    Refusal.UNRESOLVED: "No server answers to this name. Check the address.",
}


def vet_url(url: str) -> str:
    """The address to connect to for `url`, or `UrlRefused`: endpoints are checked like result
    downloads (https only in production; never private, loopback or link-local addresses)."""
    try:
        return outbound.vet(
            url,
            https_only=settings.WEBHOOK_HTTPS_ONLY,
            allow_loopback=settings.WEBHOOK_ALLOW_LOOPBACK,
        )
    except outbound.AddressRefused as refused:
        if refused.refusal == Refusal.NOT_HTTPS:
            raise UrlRefused(_schemes_accepted()) from None
        raise UrlRefused(_URL_REFUSALS[refused.refusal]) from None


def _schemes_accepted() -> str:
    # What this deployment takes: production takes https only, a local run plain http too,
    # and a person who typed ftp:// should learn which of the two they may use here.
    if settings.WEBHOOK_HTTPS_ONLY:
        return "Use an https:// address: messages carry your team's data."
    return "Use an https:// address (or http://, which this server also accepts)."


def create_endpoint(*, team: Team, url: str, events: list[str], actor: User) -> Endpoint:
    with transaction.atomic():
        endpoint = Endpoint.objects.create(team=team, url=url, events=events, created_by=actor)
        record_team_event(team=team, kind=TeamEventKind.WEBHOOK_ADDED, actor=actor, detail=url)
    return endpoint


def change_endpoint(*, endpoint: Endpoint, url: str, events: list[str], actor: User) -> None:
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(url=url, events=events)
        record_team_event(
            team=endpoint.team,
            kind=TeamEventKind.WEBHOOK_CHANGED,
            actor=actor,
            detail=f"{url}: {', '.join(events) or 'no events'}",
        )
    endpoint.url, endpoint.events = url, events


def rotate_secret(*, endpoint: Endpoint, actor: User) -> str:
    """Gives the endpoint a new secret and returns it. The old one keeps signing alongside it
    for WEBHOOK_ROTATION_OVERLAP_HOURS, while the receiver switches over."""
    secret = new_secret()
    until = timezone.now() + timedelta(hours=settings.WEBHOOK_ROTATION_OVERLAP_HOURS)
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(
            secret=secret, previous_secret=endpoint.secret, previous_secret_until=until
        )
        record_team_event(
            team=endpoint.team,
            kind=TeamEventKind.WEBHOOK_SECRET_ROTATED,
            actor=actor,
            detail=endpoint.url,
        )
    endpoint.secret, endpoint.previous_secret = secret, endpoint.secret
    endpoint.previous_secret_until = until
    return secret


def remove_endpoint(*, endpoint: Endpoint, actor: User) -> None:
    with transaction.atomic():
        record_team_event(
            team=endpoint.team, kind=TeamEventKind.WEBHOOK_REMOVED, actor=actor, detail=endpoint.url
        )
        endpoint.delete()


def enable_endpoint(*, endpoint: Endpoint, actor: User) -> bool:
    """Turns a disabled endpoint back on, with a clean record. False if it was on."""
    with transaction.atomic():
        if not Endpoint.objects.filter(pk=endpoint.pk, enabled=False).update(
            enabled=True, disabled_reason="", disabled_at=None, failing_since=None
        ):
            return False
        record_team_event(
            team=endpoint.team, kind=TeamEventKind.WEBHOOK_ENABLED, actor=actor, detail=endpoint.url
        )
    endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since = True, "", None
    return True


def send_test_event(*, endpoint: Endpoint, actor: User) -> Delivery:
    """A message the receiver can check its signature handling with, sent now."""
    delivery = Delivery.objects.create(
        endpoint=endpoint,
        event_type=TEST_EVENT,
        payload={
            "team": {"id": str(endpoint.team.public_id), "name": endpoint.team.name},
            "message": f"A test event sent by {actor.email}.",
        },
        next_attempt_at=timezone.now(),
    )
    _announce_on_commit([delivery])
    return delivery


def resend(*, delivery: Delivery) -> Delivery:
    """Sends a message again as a new delivery, with the same `webhook-id` (it is the same
    message: a receiver that already handled it can tell)."""
    copy = Delivery.objects.create(
        endpoint=delivery.endpoint,
        message_id=delivery.message_id,
        event_type=delivery.event_type,
        payload=delivery.payload,
        occurred_at=delivery.occurred_at,
        next_attempt_at=timezone.now(),
        state=DeliveryState.PENDING,
    )
    _announce_on_commit([copy])
    return copy
