"""Stripe as the tests see it: the real HTTP API faked with respx, and webhook events shaped and
signed the way Stripe sends them (`Stripe-Signature: t=<ts>,v1=<HMAC-SHA256>`)."""

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx
import respx
from django.test import Client

SECRET_KEY = "sk_test_unmark_billing"
WEBHOOK_SECRET = "whsec_test_unmark_billing"
API_VERSION = "2026-10-28.endive"

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{next(_ids):06d}"


class FakeStripe:
    """The parts of api.stripe.com Unmark uses, remembering what was asked of it."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.customers: list[dict[str, str]] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.created_sessions: list[dict[str, str]] = []
        self.refuse_checkout = False
        router.post("/v1/customers").mock(side_effect=self._create_customer)
        router.post("/v1/checkout/sessions").mock(side_effect=self._create_session)
        self.retrieve = router.get(path__regex=r"^/v1/checkout/sessions/(?P<sid>[^/]+)$").mock(
            side_effect=self._retrieve_session
        )

    def _create_customer(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        customer = {"id": new_id("cus"), "object": "customer", "email": form.get("email")}
        self.customers.append(form)
        return httpx.Response(200, json=customer)

    def _create_session(self, request: httpx.Request) -> httpx.Response:
        if self.refuse_checkout:
            error = {"type": "invalid_request_error", "message": "Your account cannot do this."}
            return httpx.Response(400, json={"error": error})
        form = dict(parse_qsl(request.content.decode()))
        self.created_sessions.append(form)
        session_id = new_id("cs")
        amount = int(form["line_items[0][price_data][unit_amount]"]) * int(
            form["line_items[0][quantity]"]
        )
        self.sessions[session_id] = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": form["line_items[0][price_data][currency]"],
            "customer": form["customer"],
            "client_reference_id": form["client_reference_id"],
            "metadata": {
                key[len("metadata[") : -1]: value
                for key, value in form.items()
                if key.startswith("metadata[")
            },
            "payment_intent": None,
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "success_url": form["success_url"],
            "cancel_url": form["cancel_url"],
        }
        return httpx.Response(200, json=self.sessions[session_id])

    def _retrieve_session(self, request: httpx.Request, sid: str) -> httpx.Response:
        session = self.sessions.get(sid)
        if session is None:
            return httpx.Response(404, json={"error": {"type": "invalid_request_error"}})
        expanded = dict(session)
        if session["payment_intent"]:
            expanded["payment_intent"] = {
                "id": session["payment_intent"],
                "object": "payment_intent",
                "latest_charge": {
                    "id": "ch_for_" + session["payment_intent"],
                    "object": "charge",
                    "receipt_url": receipt_url(session["payment_intent"]),
                },
            }
        return httpx.Response(200, json=expanded)

    def pay(self, session_id: str) -> dict[str, Any]:
        """The buyer pays: the session is complete and paid. Returns it as a webhook carries it."""
        session = self.sessions[session_id]
        session.update(status="complete", payment_status="paid", payment_intent=new_id("pi"))
        return dict(session)


def receipt_url(payment_intent: str) -> str:
    return f"https://pay.stripe.com/receipts/payment/{payment_intent}"


def checkout_session(
    topup: Any, *, payment_status: str = "paid", payment_intent: str | None = None
) -> dict[str, Any]:
    """A Checkout Session for `topup` as Stripe puts it in an event's data.object."""
    paid = payment_status == "paid"
    return {
        "id": topup.checkout_session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete" if paid else "open",
        "payment_status": payment_status,
        "amount_total": topup.amount_cents,
        "currency": "usd",
        "customer": "cus_test_acme",
        "client_reference_id": str(topup.public_id),
        "metadata": {"topup_id": str(topup.pk), "team": str(topup.team.public_id)},
        "payment_intent": payment_intent
        or (f"pi_for_{topup.checkout_session_id}" if paid else None),
        "url": None,
    }


def charge(
    *,
    payment_intent: str,
    amount: int,
    amount_refunded: int,
    charge_id: str = "ch_test_refunded",
    refunds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Charge as `charge.refunded` carries it. Since API 2022-11-15 it lists no refunds."""
    data: dict[str, Any] = {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "currency": "usd",
        "paid": True,
        "payment_intent": payment_intent,
        "receipt_url": receipt_url(payment_intent),
        "refunded": amount_refunded == amount,
        "status": "succeeded",
    }
    if refunds is not None:
        data["refunds"] = {"object": "list", "data": refunds, "has_more": False}
    return data


def refund(refund_id: str, amount: int, created: int, status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "created": created,
        "status": status,
    }


def dispute(*, payment_intent: str, amount: int) -> dict[str, Any]:
    return {
        "id": new_id("dp"),
        "object": "dispute",
        "amount": amount,
        "charge": "ch_for_" + payment_intent,
        "payment_intent": payment_intent,
        "currency": "usd",
        "reason": "fraudulent",
        "status": "needs_response",
    }


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's scheme: v1 = hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the secret."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode(), f"{signed_at}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={signed_at},v1={digest}"


def post_event(
    client: Client,
    body: dict[str, Any] | bytes,
    *,
    signature: str | None = None,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> Any:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/hooks/stripe/",
        data=payload,
        content_type="application/json",
        headers={
            "Stripe-Signature": signature or sign(payload, secret=secret, timestamp=timestamp)
        },
    )
