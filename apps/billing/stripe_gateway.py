"""The Stripe adapter: the only module that talks to Stripe.

It uses stripe-python over httpx (`HTTPXClient(allow_sync_methods=True)`), so tests fake Stripe at
the HTTP boundary with respx. Everything it returns is a small plain value; every failure is one
of the errors below. It writes no rows: the services record what Stripe answered.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import stripe
from django.conf import settings

from apps import plural

if TYPE_CHECKING:
    from apps.accounts.models import Team
    from apps.billing.models import TopUp

logger = logging.getLogger(__name__)

# Stripe answers in well under a second; a hung connection must not hold a web worker for long.
TIMEOUT_SECONDS = 20


class StripeGatewayError(Exception):
    """Stripe could not be reached or refused the request."""


class StripeNotConfigured(StripeGatewayError):
    """This server has no Stripe secret key."""


class WebhookRejected(Exception):
    """A webhook body that is not a genuine, recent, well-formed Stripe event."""


def is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


@functools.cache
def _client_for(secret_key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        secret_key,
        http_client=stripe.HTTPXClient(timeout=TIMEOUT_SECONDS, allow_sync_methods=True),
        # Retries are safe: every POST below carries an idempotency key.
        max_network_retries=2,
    )


def _client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise StripeNotConfigured("Top-ups are not configured on this server.")
    return _client_for(settings.STRIPE_SECRET_KEY)


@dataclass(frozen=True)
class CheckoutSession:
    """What Unmark needs to know about a Checkout Session."""

    id: str
    url: str
    status: str  # open, complete, expired
    payment_status: str  # paid, unpaid, no_payment_required
    amount_total: int | None
    currency: str
    client_reference_id: str
    metadata: Mapping[str, str]
    payment_intent_id: str
    receipt_url: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CheckoutSession:
        """From a session as Stripe sends it, in an event or retrieved with its payment expanded."""
        payment_intent = data.get("payment_intent")
        receipt_url = ""
        if isinstance(payment_intent, Mapping):
            charge = payment_intent.get("latest_charge")
            if isinstance(charge, Mapping):
                receipt_url = charge.get("receipt_url") or ""
            payment_intent = payment_intent.get("id")
        return cls(
            id=data["id"],
            url=data.get("url") or "",
            status=data.get("status") or "",
            payment_status=data.get("payment_status") or "",
            amount_total=data.get("amount_total"),
            currency=data.get("currency") or "",
            client_reference_id=data.get("client_reference_id") or "",
            metadata=data.get("metadata") or {},
            payment_intent_id=payment_intent or "",
            receipt_url=receipt_url,
        )


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    livemode: bool
    payload: dict[str, Any]  # the whole event, as received


def create_customer(*, team: Team, email: str) -> str:
    """A Stripe Customer for the team; the same one however often it is asked for."""
    try:
        customer = _client().v1.customers.create(
            params={"name": team.name, "email": email, "metadata": {"team": str(team.public_id)}},
            # Two people buying at once for a new team get one customer, not two.
            options={"idempotency_key": f"customer:team:{team.public_id}"},
        )
    except stripe.StripeError as exc:
        raise _gateway_error("create a customer", exc) from exc
    return str(customer.id)


def create_checkout_session(
    *, topup: TopUp, customer_id: str, success_url: str, cancel_url: str
) -> CheckoutSession:
    """A Checkout Session in payment mode for the top-up's server-computed price."""
    metadata = {"topup_id": str(topup.pk), "team": str(topup.team.public_id)}
    videos = topup.credits // settings.CREDITS_PER_VIDEO
    try:
        session = _client().v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "customer": customer_id,
                "client_reference_id": str(topup.public_id),
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": topup.currency,
                            "unit_amount": topup.amount_cents,
                            "product_data": {
                                "name": f"{topup.credits:,} Unmark credits",  # packs: 1,000 and up
                                "description": f"Enough for {plural.videos(videos)}.",
                            },
                        },
                    }
                ],
                "metadata": metadata,
                "payment_intent_data": {"metadata": metadata},
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            options={"idempotency_key": f"checkout:{topup.public_id}"},
        )
    except stripe.StripeError as exc:
        raise _gateway_error("start a checkout", exc) from exc
    return CheckoutSession.from_data(session.to_dict())


def retrieve_checkout_session(session_id: str) -> CheckoutSession:
    """The session as Stripe has it now, with its payment and receipt."""
    try:
        session = _client().v1.checkout.sessions.retrieve(
            session_id, params={"expand": ["payment_intent.latest_charge"]}
        )
    except stripe.StripeError as exc:
        raise _gateway_error("look up a checkout", exc) from exc
    return CheckoutSession.from_data(session.to_dict())


def parse_webhook(*, payload: bytes, signature: str | None) -> WebhookEvent:
    """Checks the `Stripe-Signature` of the raw body (HMAC and the default 300 s tolerance), then
    reads the event. Raises `WebhookRejected` for anything else."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookRejected("Stripe webhooks are not configured on this server.")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise WebhookRejected(str(exc)) from exc
    data = event.get("data") if isinstance(event, dict) else None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("object"), dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
    ):
        raise WebhookRejected("The body is not a Stripe event.")
    return WebhookEvent(
        id=event["id"],
        type=event["type"],
        livemode=bool(event.get("livemode")),
        payload=event,
    )


def _gateway_error(action: str, exc: stripe.StripeError) -> StripeGatewayError:
    logger.warning(
        "stripe request failed",
        extra={"action": action, "status": exc.http_status, "error": type(exc).__name__},
    )
    return StripeGatewayError(f"Stripe could not {action}: {exc.user_message or exc}")
