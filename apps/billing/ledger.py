"""The credit ledger: the one module that changes a wallet. Other apps call only these functions.

Guarantees, for every function here:
- **One transaction.** A movement is one `LedgerEntry` plus one UPDATE of the wallet made with
  `F()` expressions (never a read-modify-write in Python); both happen or neither. Called inside
  the caller's `transaction.atomic()`, it joins it (as a savepoint), so the caller's rollback
  undoes it too.
- **Idempotent by key.** `LedgerEntry.key` is unique in the database, and the entry is inserted
  *before* the wallet changes. Repeating a key changes nothing and returns what the first call
  made; two concurrent calls with one key apply once (on PostgreSQL the second waits on the
  unique index until the first commits, then finds its entry). The returned entry's
  `just_recorded` says which call applied it. Reusing a key for a different movement raises
  `KeyConflict`.
- **No overdraft.** A hold succeeds only through `UPDATE wallet ... WHERE balance - held >= n AND
  frozen_at IS NULL`: the database decides, so concurrent holds can never take available credits
  below zero. Only clawbacks and staff adjustments may take a balance below zero, and then no hold
  succeeds until a top-up brings it back.
- **One hold, one settle per job.** Keys `hold:job:<pk>` and `settle:job:<pk>`; capture and release
  share the settle key, so only one of them can ever exist for a job.

The sign convention of `LedgerEntry.amount` is documented in `apps.billing.models`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import ngettext

from apps import plural
from apps.billing.models import SETTLE_KINDS, EntryKind, LedgerEntry, TopUp, Wallet
from apps.refusals import Refused

if TYPE_CHECKING:
    from django.db.models.expressions import CombinedExpression

    from apps.accounts.models import Team, User

logger = logging.getLogger(__name__)


class InsufficientCredits(Refused):
    """The team's available credits do not cover a hold. Nothing was reserved."""

    code, status, title = "insufficient-credits", 402, "Not enough credits"

    def __init__(self, *, needed: int, available: int, videos: int | None = None) -> None:
        self.needed = needed
        self.available = available
        super().__init__(_short_of(needed, available, videos), needed=needed, available=available)

    @property
    def missing(self) -> int:
        """Credits the team must add before the hold could succeed."""
        return self.needed - self.available


def _short_of(needed: int, available: int, videos: int | None) -> str:
    what = plural.credits(needed)
    if videos is not None:
        what = ngettext("%(videos)s needs %(needed)s", "%(videos)s need %(needed)s", videos) % {
            "videos": plural.videos(videos),
            "needed": what,
        }
    else:
        what = f"This needs {what}"
    missing = needed - available
    more = ngettext(
        "%(missing)s more credit is needed.", "%(missing)s more credits are needed.", missing
    ) % {"missing": f"{missing:,}"}
    return (
        f"{what}, but your team has {plural.credits(max(available, 0))} available: {more} "
        "Nothing was submitted."
    )


class TeamFrozen(Refused):
    """The team's wallet is frozen (a payment dispute): no new holds. Nothing was reserved."""

    code, status, title = "team-frozen", 403, "Credits frozen"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__("New videos are paused for this team because of a payment dispute.")


class LedgerError(Exception):
    """A call that can never succeed as made: a bug in the caller, not a state of the team."""


class NoHold(LedgerError):
    """A job was settled that never had credits held for it."""


class KeyConflict(LedgerError):
    """An idempotency key was reused for a different movement."""


class Billed(Protocol):
    """What the ledger needs to know of a job it holds credits for (billing knows no jobs)."""

    pk: int
    team_id: int
    credits: int


@dataclass(frozen=True)
class _Movement:
    kind: EntryKind
    amount: int
    key: str
    job_id: int | None = None
    topup: TopUp | None = None
    actor: User | None = None
    memo: str = ""


# --- Wallets --------------------------------------------------------------------------------


def open_wallet(team: Team) -> Wallet:
    """The team's wallet, created empty if it has none. Safe to call any number of times."""
    wallet, _ = Wallet.objects.get_or_create(team=team)
    return wallet


def available_credits(team: Team) -> int:
    """balance - held: what the team may still reserve (below zero after a spent refund)."""
    row = Wallet.objects.filter(team=team).values_list("balance", "held").first()
    return row[0] - row[1] if row else 0


def freeze(*, team: Team, reason: str) -> bool:
    """Stops new holds for the team (jobs already held still settle). True if it was not frozen."""
    open_wallet(team)
    changed = Wallet.objects.filter(team=team, frozen_at__isnull=True).update(
        frozen_at=timezone.now(), frozen_reason=reason[:200]
    )
    return changed == 1


def unfreeze(*, team: Team, frozen_for: str = "") -> bool:
    """Lets the team hold credits again. True if it was frozen.

    With `frozen_for`, only a freeze whose reason starts with it is lifted (a won dispute lifts
    its own freeze, not another dispute's).
    """
    changed = Wallet.objects.filter(
        team=team, frozen_at__isnull=False, frozen_reason__startswith=frozen_for
    ).update(frozen_at=None, frozen_reason="")
    return changed == 1


# --- Movements of the balance ---------------------------------------------------------------


def grant(
    *, team: Team, credits: int, key: str, memo: str, actor: User | None = None
) -> LedgerEntry:
    """Adds free credits (sign-up, staff). Idempotent by `key`: returns the entry it made."""
    _require_positive(credits)
    movement = _Movement(EntryKind.GRANT, credits, key, actor=actor, memo=memo)
    return _move_balance(team=team, movement=movement)


def credit_topup(*, topup: TopUp) -> LedgerEntry:
    """Adds the credits of a paid top-up, once per Checkout Session (key `topup:<session id>`)
    or, for a payment staff recorded, once per its reference (key `payment:<reference>`)."""
    if topup.checkout_session_id:
        key = f"topup:{topup.checkout_session_id}"
    elif topup.reference:
        key = f"payment:{topup.reference}"
    else:
        raise LedgerError(f"Top-up {topup.pk} has no Checkout Session nor reference to credit.")
    movement = _Movement(
        EntryKind.TOPUP, topup.credits, key, topup=topup, memo=f"Bought {topup.credits:,} credits"
    )
    return _move_balance(team=topup.team, movement=movement)


def clawback(
    *, team: Team, credits: int, key: str, memo: str, topup: TopUp | None = None
) -> LedgerEntry:
    """Takes back refunded credits. May take the balance below zero. Idempotent by `key`."""
    _require_positive(credits)
    movement = _Movement(EntryKind.CLAWBACK, -credits, key, topup=topup, memo=memo)
    return _move_balance(team=team, movement=movement)


def adjust(*, team: Team, credits: int, key: str, actor: User, reason: str) -> LedgerEntry:
    """A staff correction of the balance, signed, with the reason recorded. Idempotent by `key`."""
    if credits == 0:
        raise LedgerError("An adjustment must move at least one credit.")
    if not reason.strip():
        raise LedgerError("An adjustment needs a reason.")
    movement = _Movement(EntryKind.ADJUSTMENT, credits, key, actor=actor, memo=reason.strip())
    return _move_balance(team=team, movement=movement)


# --- Holds and settles ----------------------------------------------------------------------


def hold(
    *, team: Team, credits: int, key: str, job: Billed | None = None, memo: str = ""
) -> LedgerEntry:
    """Reserves `credits` of the team's available credits. Idempotent by `key`.

    Raises `InsufficientCredits` or `TeamFrozen` (and reserves nothing) when the one conditional
    UPDATE finds the wallet short or frozen. Only a hold linked to a `job` can be settled by
    `capture` / `release`; the job pipeline uses `hold_for_jobs`, which always links them.
    """
    _require_positive(credits)
    if job is not None:
        _require_same_team(team, job)
    movement = _Movement(EntryKind.HOLD, credits, key, job.pk if job else None, memo=memo)
    (entry,) = _hold(team=team, movements=[movement])
    return entry


def hold_for_jobs(*, team: Team, jobs: Sequence[Billed]) -> None:
    """Reserves each job's credits with one conditional UPDATE for the total, all or nothing.

    Call it inside the transaction that created the jobs: on `InsufficientCredits` or
    `TeamFrozen` nothing is reserved, and letting the exception out rolls the jobs back too.
    Writes one HOLD entry per job (key `hold:job:<pk>`, amount `job.credits`).
    """
    for job in jobs:
        if job.pk is None:
            raise LedgerError("Save the jobs before holding credits for them.")
        _require_same_team(team, job)
        _require_positive(job.credits)
    movements = [
        _Movement(EntryKind.HOLD, job.credits, f"hold:job:{job.pk}", job.pk, memo="Video submitted")
        for job in jobs
    ]
    if movements:
        _hold(team=team, movements=movements, videos=len(movements))


def capture(*, job: Billed) -> bool:
    """The job succeeded: its held credits leave the wallet (balance and held both drop).

    Returns True if this call settled the job, False if it was already settled (captured or
    released). Raises `NoHold` if credits were never held for the job.
    """
    return _settle(job=job, kind=EntryKind.CAPTURE, memo="Video ready")


def release(*, job: Billed, memo: str = "") -> bool:
    """The job failed or was canceled: its held credits become available again.

    Returns True if this call settled the job, False if it was already settled (captured or
    released). Raises `NoHold` if credits were never held for the job.
    """
    return _settle(job=job, kind=EntryKind.RELEASE, memo=memo or "Credits returned")


# --- Internals ------------------------------------------------------------------------------


def _require_positive(credits: int) -> None:
    if credits <= 0:
        raise LedgerError(f"Credits must be a positive whole number, not {credits!r}.")


def _require_same_team(team: Team, job: Billed) -> None:
    if job.team_id != team.pk:
        raise LedgerError(f"Job {job.pk} belongs to another team.")


def _record(*, team_id: int, movement: _Movement) -> tuple[LedgerEntry, bool]:
    """Inserts the entry, or finds the one its key already made: (entry, created).

    The insert runs in a savepoint so that a duplicate key leaves the surrounding transaction
    usable on PostgreSQL; the entry that won is then visible to the lookup.
    """
    try:
        with transaction.atomic():
            entry = LedgerEntry.objects.create(
                team_id=team_id,
                kind=movement.kind,
                amount=movement.amount,
                key=movement.key,
                job_id=movement.job_id,
                topup=movement.topup,
                actor=movement.actor,
                memo=movement.memo[:300],
            )
            entry.just_recorded = True
            return entry, True
    except IntegrityError:
        existing = LedgerEntry.objects.filter(key=movement.key).first()
        if existing is None:
            raise  # another constraint failed: a real error
    same_kind = existing.kind == movement.kind or (
        existing.kind in SETTLE_KINDS and movement.kind in SETTLE_KINDS
    )
    if existing.team_id != team_id or not same_kind or existing.amount != movement.amount:
        raise KeyConflict(f"Key {movement.key!r} already recorded a different movement.")
    return existing, False


def _update_wallet(team_id: int, **changes: CombinedExpression) -> None:
    if Wallet.objects.filter(team_id=team_id).update(**changes) == 0:
        # A team made before wallets existed, or by hand: give it one and apply the change.
        Wallet.objects.get_or_create(team_id=team_id)
        Wallet.objects.filter(team_id=team_id).update(**changes)


def _move_balance(*, team: Team, movement: _Movement) -> LedgerEntry:
    with transaction.atomic():
        entry, created = _record(team_id=team.pk, movement=movement)
        if created:
            _update_wallet(team.pk, balance=F("balance") + movement.amount)
            logger.info(
                "credits moved",
                extra={"team": team.pk, "kind": movement.kind, "amount": movement.amount},
            )
    return entry


def _hold(
    *, team: Team, movements: Sequence[_Movement], videos: int | None = None
) -> list[LedgerEntry]:
    with transaction.atomic():
        recorded = [_record(team_id=team.pk, movement=movement) for movement in movements]
        total = sum(entry.amount for entry, created in recorded if created)
        if total:
            _reserve(team=team, credits=total, videos=videos)
            logger.info("credits held", extra={"team": team.pk, "credits": total})
    return [entry for entry, _ in recorded]


def _reserve(*, team: Team, credits: int, videos: int | None) -> None:
    """The conditional UPDATE that decides a hold; raises (rolling back the entries) if it can't."""

    def conditional_update() -> bool:
        wallets = Wallet.objects.filter(
            team=team, frozen_at__isnull=True, balance__gte=F("held") + credits
        )
        return wallets.update(held=F("held") + credits) == 1

    if conditional_update():
        return
    # Find out why, with the row locked so the answer cannot change while we read it.
    open_wallet(team)
    wallet = Wallet.objects.select_for_update().get(team=team)
    if wallet.frozen_at is not None:
        raise TeamFrozen(wallet.frozen_reason or "payment dispute")
    # A grant may have landed between the UPDATE and the lock; then the UPDATE now succeeds.
    if wallet.available < credits or not conditional_update():
        raise InsufficientCredits(needed=credits, available=wallet.available, videos=videos)


def _settle(*, job: Billed, kind: EntryKind, memo: str) -> bool:
    with transaction.atomic():
        held = LedgerEntry.objects.filter(job_id=job.pk, kind=EntryKind.HOLD).first()
        if held is None:
            raise NoHold(f"Job {job.pk} has no credit hold to {kind}.")
        team_id = held.team_id
        movement = _Movement(kind, -held.amount, f"settle:job:{job.pk}", job.pk, memo=memo)
        _, created = _record(team_id=team_id, movement=movement)
        if not created:
            return False
        if kind == EntryKind.CAPTURE:
            _update_wallet(
                team_id, held=F("held") - held.amount, balance=F("balance") - held.amount
            )
        else:
            _update_wallet(team_id, held=F("held") - held.amount)
        logger.info(
            "credits settled",
            extra={"team": team_id, "job": job.pk, "kind": kind, "credits": held.amount},
        )
    return True
