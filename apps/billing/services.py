"""Buying credits with Stripe Checkout: prices, checkout, fulfilment, refunds and disputes;
payments received outside Stripe, recorded by staff; and staff grants and adjustments.

Credits only ever move through `apps.billing.ledger`; this module decides *when* and *how many*
from what Stripe reports, and it is safe to run any number of times on the same report. Credits
that reach a team (a top-up, a staff grant or adjustment) are written to the team's audit log
once per ledger entry, in the same transaction.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from apps import plural
from apps.accounts.models import TeamEventKind
from apps.accounts.services import record_team_event
from apps.billing import ledger, low_balance
from apps.billing import stripe_gateway as gateway
from apps.billing.models import EntryKind, LedgerEntry, TopUp, TopUpStatus, Wallet, dollars

if TYPE_CHECKING:
    from apps.accounts.models import Team, User

logger = logging.getLogger(__name__)


class FulfilmentError(Exception):
    """A paid session that does not match its top-up: nothing is credited, staff must look."""


class TopUpNotFound(Exception):
    """No paid top-up is known for this payment (yet): its checkout event may still be coming."""


@dataclass(frozen=True)
class Pack:
    credits: int

    @property
    def cents(self) -> int:
        return price_cents(self.credits)

    @property
    def usd(self) -> Decimal:
        return dollars(self.cents)

    @property
    def videos(self) -> int:
        return self.credits // settings.CREDITS_PER_VIDEO


def credit_packs() -> list[Pack]:
    return [Pack(credits) for credits in settings.CREDIT_PACKS]


def price_cents(credits: int) -> int:
    """The price of `credits` in whole US cents, from `USD_PER_CREDIT`: always computed here."""
    cents = Decimal(credits) * settings.USD_PER_CREDIT * 100
    return int(cents.to_integral_value(rounding=ROUND_HALF_UP))


def start_checkout(
    *, team: Team, buyer: User, credits: int, success_url: str, cancel_url: str
) -> str:
    """Saves a pending top-up, opens a Checkout Session for it and returns the URL to pay at.

    Raises `StripeGatewayError` (the top-up is then marked failed) if Stripe refuses.
    """
    if credits not in settings.CREDIT_PACKS:
        raise ValueError(f"{credits} credits is not one of the packs on sale.")
    topup = TopUp.objects.create(
        team=team, created_by=buyer, credits=credits, amount_cents=price_cents(credits)
    )
    try:
        customer_id = _stripe_customer(team=team, email=buyer.email)
        session = gateway.create_checkout_session(
            topup=topup, customer_id=customer_id, success_url=success_url, cancel_url=cancel_url
        )
    except gateway.StripeGatewayError as exc:
        TopUp.objects.filter(pk=topup.pk, status=TopUpStatus.PENDING).update(
            status=TopUpStatus.FAILED, failure_reason=str(exc)[:300]
        )
        raise
    TopUp.objects.filter(pk=topup.pk).update(checkout_session_id=session.id)
    logger.info("checkout started", extra={"team": team.pk, "topup": topup.pk, "credits": credits})
    return session.url


def _stripe_customer(*, team: Team, email: str) -> str:
    """The team's one Stripe Customer id, created (and remembered on its wallet) the first time."""
    wallet = ledger.open_wallet(team)
    if wallet.stripe_customer_id:
        return wallet.stripe_customer_id
    customer_id = gateway.create_customer(team=team, email=email)
    # Only the first writer stores its id; a racing request reads the stored one.
    Wallet.objects.filter(pk=wallet.pk, stripe_customer_id="").update(
        stripe_customer_id=customer_id
    )
    return Wallet.objects.values_list("stripe_customer_id", flat=True).get(pk=wallet.pk)


def fulfil_checkout_session(session: gateway.CheckoutSession) -> TopUp | None:
    """Credits a paid session's top-up exactly once; the webhook and the success page both call it.

    Returns the top-up (still pending when the payment has not completed), or None when the
    session is not one of Unmark's. Raises `FulfilmentError` if the amount paid does not match.
    """
    with transaction.atomic():
        topup = _lock_topup(session)
        if topup is None:
            logger.warning("checkout session without a top-up", extra={"session": session.id})
            return None
        if session.payment_status != "paid":
            return topup
        if session.amount_total != topup.amount_cents or session.currency != topup.currency:
            raise FulfilmentError(
                f"Session {session.id} paid {session.amount_total} {session.currency}, "
                f"top-up {topup.public_id} costs {topup.amount_cents} {topup.currency}."
            )
        if not topup.checkout_session_id:
            # The server stopped between creating the session and saving its id.
            topup.checkout_session_id = session.id
            TopUp.objects.filter(pk=topup.pk).update(checkout_session_id=session.id)
        entry = ledger.credit_topup(topup=topup)
        _log_credits_granted(
            entry,
            team=topup.team,
            actor=topup.created_by,
            detail=f"{plural.credits(topup.credits)} bought",
        )
        changes: dict[str, Any] = {"payment_intent_id": session.payment_intent_id}
        if topup.status != TopUpStatus.PAID:
            changes.update(status=TopUpStatus.PAID, paid_at=timezone.now(), failure_reason="")
            logger.info("top-up paid", extra={"team": topup.team_id, "topup": topup.pk})
        if session.receipt_url:
            changes["receipt_url"] = session.receipt_url
        TopUp.objects.filter(pk=topup.pk).update(**changes)
    topup.refresh_from_db()
    return topup


def end_checkout_session(session: gateway.CheckoutSession, *, status: TopUpStatus) -> bool:
    """Marks a still-pending top-up failed or expired. A paid top-up is never changed back."""
    reason = {
        TopUpStatus.FAILED: "The payment did not go through.",
        TopUpStatus.EXPIRED: "The checkout was not completed in time.",
    }[status]
    changed = TopUp.objects.filter(_session_match(session), status=TopUpStatus.PENDING).update(
        status=status, failure_reason=reason
    )
    return changed > 0


def record_receipt(*, topup_id: int) -> None:
    """Best effort: fetches the Stripe receipt link of a paid top-up that has none yet."""
    topup = TopUp.objects.filter(pk=topup_id, status=TopUpStatus.PAID, receipt_url="").first()
    if topup is None or not topup.checkout_session_id:
        return
    try:
        session = gateway.retrieve_checkout_session(topup.checkout_session_id)
    except gateway.StripeGatewayError:
        return  # already logged; the page simply shows no receipt link
    if session.receipt_url:
        TopUp.objects.filter(pk=topup.pk).update(receipt_url=session.receipt_url)


def claw_back_refunds(*, charge: Mapping[str, Any]) -> int:
    """Takes back the refunded share of a top-up's credits, once per refund. Returns credits taken.

    The share is credits * refunded / charged, rounded down on the running total, so the credits
    taken back never exceed the credits bought. Each refund is keyed by its id (`clawback:<re_…>`)
    when the charge lists its refunds; Stripe API versions since 2022-11-15 do not list them, so
    the running total `amount_refunded` is keyed too (`clawback:<ch_…>:<cents>`). Either way each
    step takes only what the ledger has not already taken for this top-up, under a lock on it.
    """
    with transaction.atomic():
        topup = _lock_paid_topup(charge.get("payment_intent"))
        charged = int(charge["amount"])
        taken = -(
            LedgerEntry.objects.filter(topup=topup, kind=EntryKind.CLAWBACK).aggregate(
                total=Sum("amount")
            )["total"]
            or 0
        )
        taken_now = 0
        for key, refunded in _refund_steps(charge):
            due = topup.credits * min(refunded, charged) // charged
            if due > taken + taken_now:
                entry = ledger.clawback(
                    team=topup.team,
                    credits=due - taken - taken_now,
                    key=key,
                    topup=topup,
                    memo=f"Refund of ${dollars(refunded)} for a top-up of "
                    f"{topup.credits:,} credits",
                )
                taken_now += -entry.amount
        TopUp.objects.filter(pk=topup.pk).update(
            refunded_cents=Greatest("refunded_cents", int(charge.get("amount_refunded") or 0))
        )
    if taken_now:
        logger.info(
            "refund clawed back",
            extra={"team": topup.team_id, "topup": topup.pk, "credits": taken_now},
        )
    return taken_now


def freeze_for_dispute(*, dispute: Mapping[str, Any]) -> bool:
    """Freezes the team whose top-up is disputed: no new jobs until the dispute is closed."""
    with transaction.atomic():
        topup = _lock_paid_topup(dispute.get("payment_intent"))
        frozen = ledger.freeze(
            team=topup.team,
            reason=f"{_dispute_reason(dispute)} on a top-up of {topup.credits:,} credits",
        )
    logger.warning("team frozen by a dispute", extra={"team": topup.team_id, "topup": topup.pk})
    return frozen


# Stripe's final statuses of a dispute: the money stays with us, or goes back to the payer.
DISPUTE_KEPT = frozenset({"won", "warning_closed"})
DISPUTE_LOST = "lost"


def close_dispute(*, dispute: Mapping[str, Any]) -> bool:
    """A dispute ended. Won: the freeze it caused is lifted. Lost: the disputed share of the
    top-up's credits is taken back, once (keyed by the dispute), never more than was bought;
    the team stays frozen until staff look at it. True if anything changed."""
    status = dispute.get("status")
    with transaction.atomic():
        topup = _lock_paid_topup(dispute.get("payment_intent"))
        if status in DISPUTE_KEPT:
            changed = ledger.unfreeze(team=topup.team, frozen_for=f"{_dispute_reason(dispute)} ")
        elif status == DISPUTE_LOST:
            changed = _claw_back_dispute(topup, dispute)
        else:
            return False
    logger.warning(
        "dispute closed", extra={"team": topup.team_id, "topup": topup.pk, "status": status}
    )
    return changed


def _claw_back_dispute(topup: TopUp, dispute: Mapping[str, Any]) -> bool:
    key = f"clawback:{dispute['id']}"
    charged = topup.amount_cents
    due = topup.credits * min(int(dispute["amount"]), charged) // charged
    # What refunds (or other disputes) already took back counts: never more than was bought.
    taken_before = -(
        LedgerEntry.objects.filter(topup=topup, kind=EntryKind.CLAWBACK)
        .exclude(key=key)
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )
    credits = min(due, topup.credits - taken_before)
    if credits <= 0:
        return False
    entry = ledger.clawback(
        team=topup.team,
        credits=credits,
        key=key,
        topup=topup,
        memo=f"Lost payment dispute of ${dollars(int(dispute['amount']))} on a top-up of "
        f"{topup.credits:,} credits",
    )
    return entry.just_recorded


def _dispute_reason(dispute: Mapping[str, Any]) -> str:
    return f"Payment dispute {dispute.get('id', '')}"


class PaymentConflict(Exception):
    """A payment's reference was already recorded for another team or amount: nothing changed."""


def credits_for_cents(cents: int) -> int:
    """The whole credits `cents` buy at the list price (`USD_PER_CREDIT`), rounded down."""
    return int(Decimal(cents) / 100 / settings.USD_PER_CREDIT)


def record_payment(*, team: Team, cents: int, reference: str, staff: User) -> TopUp:
    """A payment received outside Stripe (a bank transfer), recorded by staff: a paid top-up of
    the credits it buys at the list price, in the ledger, the team's top-ups and the figures.

    Idempotent on the reference: recording it again for the same team and amount returns the
    first top-up and changes nothing; for another team or amount raises `PaymentConflict`.
    """
    reference = reference.strip()
    credits = credits_for_cents(cents)
    if not reference or credits <= 0:
        raise ValueError("A payment needs a reference and an amount that buys a credit.")
    with transaction.atomic():
        # The unique reference makes a racing second call fail here rather than pay twice.
        topup, created = TopUp.objects.select_for_update().get_or_create(
            reference=reference,
            defaults={
                "team": team,
                "created_by": staff,
                "credits": credits,
                "amount_cents": cents,
                "status": TopUpStatus.PAID,
                "paid_at": timezone.now(),
            },
        )
        if not created and (topup.team_id != team.pk or topup.amount_cents != cents):
            raise PaymentConflict(
                f"Reference {reference} was already recorded: ${topup.amount} for {topup.team}."
            )
        entry = ledger.credit_topup(topup=topup)
        _log_credits_granted(
            entry,
            team=team,
            detail=f"{plural.credits(credits)} bought: ${topup.amount} received, "
            f"reference {reference}",
        )
    return topup


def grant_by_staff(*, team: Team, credits: int, key: str, staff: User, reason: str) -> LedgerEntry:
    """Free credits from Unmark staff. Idempotent by `key`, like every ledger movement."""
    with transaction.atomic():
        entry = ledger.grant(team=team, credits=credits, key=key, memo=reason, actor=staff)
        _log_credits_granted(entry, team=team, detail=f"{plural.credits(credits)}: {reason}")
    return entry


def adjust_by_staff(*, team: Team, credits: int, key: str, staff: User, reason: str) -> LedgerEntry:
    """A staff correction of the balance, either way. Idempotent by `key`."""
    with transaction.atomic():
        entry = ledger.adjust(team=team, credits=credits, key=key, actor=staff, reason=reason)
        _log_credits_granted(
            entry,
            team=team,
            detail=f"Balance adjusted by {'+' if credits > 0 else '-'}"
            f"{plural.credits(abs(credits))}: {reason}",
        )
    return entry


def _log_credits_granted(
    entry: LedgerEntry, *, team: Team, detail: str, actor: User | None = None
) -> None:
    """Tells the team's owners and admins, in the audit log, about credits that reached the team.

    Only the call that recorded the entry writes the line, so a webhook and a success page
    crediting one payment, or a staff form submitted twice, log it once. Staff act as `None`:
    the log says "Unmark staff" and the ledger entry keeps which staff member it was.
    """
    if entry.just_recorded:
        record_team_event(team=team, kind=TeamEventKind.CREDITS_GRANTED, actor=actor, detail=detail)
        # Credits back above the low-balance threshold re-arm its email (or a correction took
        # them below it); after commit, so a rollback tells nobody.
        transaction.on_commit(lambda: low_balance.check(team=team))


def _session_match(session: gateway.CheckoutSession) -> Q:
    match = Q(checkout_session_id=session.id)
    # A reference that is not a UUID is not one of ours: only the session id can match then.
    with contextlib.suppress(ValueError):
        match |= Q(public_id=uuid.UUID(session.client_reference_id), checkout_session_id="")
    return match


def _lock_topup(session: gateway.CheckoutSession) -> TopUp | None:
    topup = TopUp.objects.select_for_update().filter(_session_match(session)).first()
    if topup is None:
        return None
    team_id = session.metadata.get("team")
    if team_id and team_id != str(topup.team.public_id):
        raise FulfilmentError(f"Session {session.id} names another team than its top-up.")
    return topup


def _lock_paid_topup(payment_intent_id: object) -> TopUp:
    if not isinstance(payment_intent_id, str) or not payment_intent_id:
        raise TopUpNotFound("The payment has no PaymentIntent to find its top-up by.")
    topup = TopUp.objects.select_for_update().filter(payment_intent_id=payment_intent_id).first()
    if topup is None:
        raise TopUpNotFound(f"No paid top-up has PaymentIntent {payment_intent_id} (yet).")
    return topup


def _refund_steps(charge: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(idempotency key, cents refunded so far) for each refund, oldest first, then the total."""
    steps = []
    refunds = (charge.get("refunds") or {}).get("data") or []
    refunded = 0
    for refund in sorted(refunds, key=lambda r: (r.get("created") or 0, r["id"])):
        if refund.get("status") in ("failed", "canceled"):
            continue
        refunded += int(refund["amount"])
        steps.append((f"clawback:{refund['id']}", refunded))
    total = int(charge.get("amount_refunded") or 0)
    # A charge lists at most its ten latest refunds, and recent API versions none at all.
    steps.append((f"clawback:{charge['id']}:{total}", total))
    return steps
