"""Stripe webhook events: stored by id before anything is done, then acted on exactly once.

- A verified event is stored (`StripeEvent`, unique by Stripe's event id) first; a redelivery of
  an event already processed is acknowledged and nothing else happens.
- Acting on it runs in one transaction with the stored event locked, so concurrent deliveries of
  one event cannot both act. The handlers are idempotent too (ledger keys), so even a retry after
  a crash between crediting and marking cannot credit twice.
- If acting on it fails, the transaction rolls back, the error is stored on the event, and the
  view answers 500 so Stripe delivers it again with back-off (for up to three days). That is also
  how events arriving before the one they depend on (a refund before its checkout) wait.
- Types Unmark does not act on are stored, marked ignored and acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.billing import services
from apps.billing import stripe_gateway as gateway
from apps.billing.models import EventOutcome, StripeEvent, TopUpStatus

logger = logging.getLogger(__name__)


def receive(event: gateway.WebhookEvent) -> bool:
    """Stores a verified event once and processes it unless that is done. True when done."""
    stored, created = StripeEvent.objects.get_or_create(
        event_id=event.id,
        defaults={"type": event.type, "livemode": event.livemode, "payload": event.payload},
    )
    if not created and stored.processed_at is not None:
        logger.info("stripe event already processed", extra={"event": event.id})
        return True
    return process(stored)


def process(stored: StripeEvent) -> bool:
    """Acts on a stored event unless it was processed already. True when it is processed."""
    try:
        with transaction.atomic():
            event = StripeEvent.objects.select_for_update().get(pk=stored.pk)
            if event.processed_at is not None:
                return True
            handler = HANDLERS.get(event.type)
            outcome = handler(event.payload["data"]["object"]) if handler else EventOutcome.IGNORED
            StripeEvent.objects.filter(pk=event.pk).update(
                processed_at=timezone.now(),
                outcome=outcome,
                processing_error="",
                attempts=F("attempts") + 1,
            )
    except Exception as exc:  # any failure is stored on the event and retried by Stripe
        logger.exception(
            "stripe event failed", extra={"event": stored.event_id, "type": stored.type}
        )
        StripeEvent.objects.filter(pk=stored.pk).update(
            processing_error=f"{type(exc).__name__}: {exc}", attempts=F("attempts") + 1
        )
        return False
    logger.info(
        "stripe event processed",
        extra={"event": stored.event_id, "type": stored.type, "outcome": outcome},
    )
    return True


def _checkout_paid(session_data: Mapping[str, Any]) -> EventOutcome:
    session = gateway.CheckoutSession.from_data(session_data)
    topup = services.fulfil_checkout_session(session)
    if topup is None:
        return EventOutcome.IGNORED
    if topup.status == TopUpStatus.PAID and not topup.receipt_url:
        # Events carry no receipt link; fetch it once the credits are safely committed.
        transaction.on_commit(lambda: services.record_receipt(topup_id=topup.pk))
    return EventOutcome.HANDLED


def _checkout_ended(status: TopUpStatus) -> Callable[[Mapping[str, Any]], EventOutcome]:
    def handle(session_data: Mapping[str, Any]) -> EventOutcome:
        session = gateway.CheckoutSession.from_data(session_data)
        changed = services.end_checkout_session(session, status=status)
        return EventOutcome.HANDLED if changed else EventOutcome.IGNORED

    return handle


def _charge_refunded(charge: Mapping[str, Any]) -> EventOutcome:
    services.claw_back_refunds(charge=charge)
    return EventOutcome.HANDLED


def _dispute_created(dispute: Mapping[str, Any]) -> EventOutcome:
    services.freeze_for_dispute(dispute=dispute)
    return EventOutcome.HANDLED


def _dispute_closed(dispute: Mapping[str, Any]) -> EventOutcome:
    changed = services.close_dispute(dispute=dispute)
    return EventOutcome.HANDLED if changed else EventOutcome.IGNORED


HANDLERS: dict[str, Callable[[Mapping[str, Any]], EventOutcome]] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "checkout.session.async_payment_failed": _checkout_ended(TopUpStatus.FAILED),
    "checkout.session.expired": _checkout_ended(TopUpStatus.EXPIRED),
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
