"""Credits: one wallet per team, the append-only ledger that explains every change to it, Stripe
top-ups and the Stripe events that drive them.

Only `apps.billing.ledger` changes a wallet's numbers or writes ledger entries.
"""

import uuid
from decimal import Decimal
from typing import Any, ClassVar, NoReturn

from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Q, Subquery


class EntryKind(models.TextChoices):
    GRANT = "grant", "Grant"
    TOPUP = "topup", "Top-up"
    HOLD = "hold", "Hold"
    CAPTURE = "capture", "Capture"
    RELEASE = "release", "Release"
    CLAWBACK = "clawback", "Clawback"
    ADJUSTMENT = "adjustment", "Adjustment"


# The sign convention of `LedgerEntry.amount`, from which `reconcile` recomputes every wallet:
#   grant, topup          +n  added to balance
#   clawback              -n  taken from balance (may take it below zero)
#   adjustment            ±n  added to balance
#   hold                  +n  added to held (reserved for a job)
#   release               -n  taken from held (the job failed: the reservation is freed)
#   capture               -n  taken from held *and* from balance (the job succeeded: it is paid)
# so wallet.balance = Σ amount over BALANCE_KINDS and wallet.held = Σ amount over HELD_KINDS.
BALANCE_KINDS = frozenset(
    {EntryKind.GRANT, EntryKind.TOPUP, EntryKind.CAPTURE, EntryKind.CLAWBACK, EntryKind.ADJUSTMENT}
)
HELD_KINDS = frozenset({EntryKind.HOLD, EntryKind.RELEASE, EntryKind.CAPTURE})
# A tuple, not a set: the constraints below list it, and a set's order changes with the hash
# seed, which made `makemigrations --check` see a change on some runs.
SETTLE_KINDS = (EntryKind.RELEASE, EntryKind.CAPTURE)
_POSITIVE_KINDS = [EntryKind.GRANT, EntryKind.TOPUP, EntryKind.HOLD]
_NEGATIVE_KINDS = [EntryKind.CAPTURE, EntryKind.RELEASE, EntryKind.CLAWBACK]


# A team without a low-balance alert still sees its balance as low below this many videos.
LOW_VIDEOS = 3


class Wallet(models.Model):
    """A team's credits. `available = balance - held` is what new jobs may reserve."""

    team = models.OneToOneField("accounts.Team", on_delete=models.PROTECT, related_name="wallet")
    balance = models.BigIntegerField(
        default=0, help_text="Credits owned. Below zero after a refund of spent credits."
    )
    held = models.BigIntegerField(default=0, help_text="Credits reserved by unfinished jobs.")
    frozen_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by a payment dispute: no new jobs until cleared."
    )
    frozen_reason = models.CharField(max_length=200, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_not_negative"),
        ]
        permissions = [
            ("grant_credits", "Can grant or adjust a team's credits"),
        ]

    def __str__(self) -> str:
        return f"Wallet of {self.team}"

    @property
    def available(self) -> int:
        return self.balance - self.held

    @property
    def videos_available(self) -> int:
        return max(self.available, 0) // settings.CREDITS_PER_VIDEO

    @property
    def is_low(self) -> bool:
        """Whether the balance is shown as running low (amber, in words): below the team's
        low-balance alert, the moment its email goes (`low_balance.check`), or, for a team
        that set none, under `LOW_VIDEOS` videos."""
        threshold = self.team.low_balance_threshold
        if threshold is None:
            return self.videos_available < LOW_VIDEOS
        return self.available < threshold

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None


class AppendOnlyError(Exception):
    """Ledger entries are never changed or deleted: corrections are new entries."""


class LedgerEntryQuerySet(models.QuerySet["LedgerEntry"]):
    def history(self) -> "LedgerEntryQuerySet":
        """What people read: one line per video (its hold, annotated with how it was settled)
        and one per top-up, grant, refund or adjustment. Captures and releases are folded into
        their video's line; the CSV export keeps every entry."""
        settle = LedgerEntry.objects.filter(job=OuterRef("job"), kind__in=SETTLE_KINDS)
        return (
            self.exclude(kind__in=SETTLE_KINDS)
            .annotate(settle_kind=Subquery(settle.values("kind")[:1]))
            .select_related("job__team")
        )

    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Ledger entries cannot be updated; record a correcting entry.")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("Ledger entries cannot be deleted; record a correcting entry.")


class LedgerEntry(models.Model):
    """One movement of a team's credits. Written once by `apps.billing.ledger`, never changed."""

    team = models.ForeignKey(
        "accounts.Team", on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount = models.BigIntegerField(help_text="Signed credits; see the sign convention.")
    key = models.CharField(
        max_length=200, unique=True, help_text="Idempotency key: one movement per key, ever."
    )
    job = models.ForeignKey(
        "jobs.Job",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    topup = models.ForeignKey(
        "billing.TopUp",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The staff member who made a grant or adjustment.",
    )
    memo = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LedgerEntryQuerySet.as_manager()

    # Not stored. True on the entry a ledger call returns when that call recorded the movement;
    # False when its key had recorded it before and the call changed nothing. Lets a caller do
    # something once per movement (tell the team) however often it repeats the call.
    just_recorded: bool = False

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["team", "-created_at", "-id"], name="ledger_team_recent"),
            # The operations page sums captures and clawbacks over a range of days.
            models.Index(fields=["kind", "created_at"], name="ledger_kind_created"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(
                condition=Q(kind__in=_POSITIVE_KINDS, amount__gt=0)
                | Q(kind__in=_NEGATIVE_KINDS, amount__lt=0)
                | (Q(kind=EntryKind.ADJUSTMENT) & ~Q(amount=0)),
                name="ledger_amount_sign_matches_kind",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=SETTLE_KINDS) | Q(job__isnull=False),
                name="ledger_settle_names_its_job",
            ),
            models.CheckConstraint(
                condition=~Q(kind=EntryKind.TOPUP) | Q(topup__isnull=False),
                name="ledger_topup_names_its_topup",
            ),
            # Keys already make these unique; the indexes hold even for a caller's odd key.
            models.UniqueConstraint(
                fields=["job"], condition=Q(kind=EntryKind.HOLD), name="ledger_one_hold_per_job"
            ),
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(kind__in=SETTLE_KINDS),
                name="ledger_one_settle_per_job",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:+d} ({self.key})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Ledger entries cannot be updated; record a correcting entry.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Ledger entries cannot be deleted; record a correcting entry.")

    # Set by `LedgerEntryQuerySet.history()` on a video's hold: CAPTURE, RELEASE or None.
    settle_kind: str | None = None

    @property
    def is_video(self) -> bool:
        return self.kind == EntryKind.HOLD and self.job_id is not None

    @property
    def video_outcome(self) -> str:
        """How a video's line reads: its credits are reserved, charged or refunded."""
        if self.settle_kind == EntryKind.CAPTURE:
            return "charged"
        if self.settle_kind == EntryKind.RELEASE:
            return "refunded"
        return "reserved"

    @property
    def history_title(self) -> str:
        """A top-up, grant, refund or adjustment in words (videos have their own line)."""
        titles = {
            EntryKind.TOPUP: f"Bought {self.amount:,} credits",
            EntryKind.GRANT: "Free credits",
            EntryKind.CLAWBACK: "Credits taken back after a payment refund",
            EntryKind.ADJUSTMENT: "Correction by Unmark staff",
        }
        return titles.get(EntryKind(self.kind), self.get_kind_display())

    @property
    def history_note(self) -> str:
        # Grants, refunds and corrections carry a reason written for the team; a top-up's memo
        # only repeats the title.
        return "" if self.kind == EntryKind.TOPUP else self.memo

    @property
    def history_change(self) -> int:
        """What the line did to the team's credits in the end: a charged video costs its
        credits, a refunded one nothing, a reserved one is not spent yet (shown apart)."""
        if self.is_video:
            return -self.amount if self.settle_kind == EntryKind.CAPTURE else 0
        return self.amount

    @property
    def available_change(self) -> int:
        """How this entry moved the team's available credits (balance - held)."""
        if self.kind == EntryKind.CAPTURE:
            return 0
        if self.kind in HELD_KINDS:
            return -self.amount
        return self.amount


def dollars(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


class TopUpStatus(models.TextChoices):
    PENDING = "pending", "Waiting for payment"
    PAID = "paid", "Paid"
    FAILED = "failed", "Payment failed"
    EXPIRED = "expired", "Expired"


class TopUp(models.Model):
    """One purchase of credits: through Stripe Checkout (saved as pending before the redirect),
    or a payment received some other way (a bank transfer) that staff recorded, paid at once,
    with the payment's `reference`."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="topups")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    credits = models.PositiveIntegerField()
    amount_cents = models.PositiveIntegerField(help_text="Price charged, computed on the server.")
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(
        max_length=10, choices=TopUpStatus.choices, default=TopUpStatus.PENDING
    )
    checkout_session_id = models.CharField(max_length=255, blank=True)
    reference = models.CharField(
        max_length=100,
        blank=True,
        help_text="A payment recorded by staff: its bank or invoice reference (one top-up each).",
    )
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    receipt_url = models.URLField(max_length=500, blank=True)
    refunded_cents = models.PositiveIntegerField(default=0)
    failure_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "top-up"
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        indexes: ClassVar[list[models.Index]] = [
            # The operations page sums what was paid over a range of days.
            models.Index(fields=["status", "paid_at"], name="topup_status_paid"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["checkout_session_id"],
                condition=~Q(checkout_session_id=""),
                name="topup_unique_checkout_session",
            ),
            models.UniqueConstraint(
                fields=["reference"], condition=~Q(reference=""), name="topup_unique_reference"
            ),
        ]

    def __str__(self) -> str:
        return f"Top-up of {self.credits} credits ({self.status})"

    @property
    def amount(self) -> Decimal:
        """The price in dollars, for display."""
        return dollars(self.amount_cents)

    @property
    def refunded(self) -> Decimal:
        return dollars(self.refunded_cents)


class EventOutcome(models.TextChoices):
    HANDLED = "handled", "Handled"
    IGNORED = "ignored", "Ignored"


class StripeEvent(models.Model):
    """Every verified Stripe webhook, stored by its id before it is acted on."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=EventOutcome.choices, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    processing_error = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
