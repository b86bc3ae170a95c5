"""Checks that every number in billing is explained by the ledger. Read-only.

Each check is one aggregate query, so it stays cheap however many teams there are. Whether
every job that ended was settled is the jobs' half (`apps.jobs.reconcile`): billing knows
no jobs. `manage.py reconcile` runs both.
"""

from collections.abc import Iterator

from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Sum

from apps.accounts.models import Team
from apps.billing.models import (
    BALANCE_KINDS,
    HELD_KINDS,
    SETTLE_KINDS,
    EntryKind,
    LedgerEntry,
    TopUp,
    TopUpStatus,
    Wallet,
)


def find_drift() -> list[str]:
    """One line per problem found; empty when everything adds up."""
    return [
        *_wallets_match_their_entries(),
        *_holds_settled_at_most_once(),
        *_paid_topups_credited_once(),
    ]


def _wallets_match_their_entries() -> Iterator[str]:
    for team in Team.objects.filter(wallet__isnull=True):
        yield f"Team {team.pk} ({team}) has no wallet."
    sums = {
        row["team_id"]: (row["balance"], row["held"])
        for row in LedgerEntry.objects.values("team_id").annotate(
            balance=Sum("amount", filter=Q(kind__in=BALANCE_KINDS), default=0),
            held=Sum("amount", filter=Q(kind__in=HELD_KINDS), default=0),
        )
    }
    for wallet in Wallet.objects.order_by("team_id").iterator(chunk_size=2000):
        balance, held = sums.pop(wallet.team_id, (0, 0))
        if (wallet.balance, wallet.held) != (balance, held):
            yield (
                f"Team {wallet.team_id}: wallet says balance {wallet.balance}, held "
                f"{wallet.held}; its ledger entries add up to balance {balance}, held {held}."
            )
    for team_id in sums:
        yield f"Team {team_id} has ledger entries but no wallet."


def _holds_settled_at_most_once() -> Iterator[str]:
    settles = LedgerEntry.objects.filter(kind__in=SETTLE_KINDS)
    for row in settles.values("job_id").annotate(n=Count("id")).filter(n__gt=1):
        yield f"Job {row['job_id']} was settled {row['n']} times."
    holds = LedgerEntry.objects.filter(job_id=OuterRef("job_id"), kind=EntryKind.HOLD)
    for entry in settles.filter(~Exists(holds)):
        yield f"Job {entry.job_id} was settled ({entry.key}) without a hold."
    mismatched = settles.annotate(held=Subquery(holds.values("amount")[:1])).exclude(
        amount=-F("held")
    )
    for entry in mismatched:
        yield f"Job {entry.job_id} settled {-entry.amount} credits of a different hold."


def _paid_topups_credited_once() -> Iterator[str]:
    topups = TopUp.objects.annotate(
        credited=Count("ledger_entries", filter=Q(ledger_entries__kind=EntryKind.TOPUP)),
        credited_sum=Sum(
            "ledger_entries__amount", filter=Q(ledger_entries__kind=EntryKind.TOPUP), default=0
        ),
    )
    for topup in topups.filter(status=TopUpStatus.PAID).exclude(credited=1):
        yield f"Paid top-up {topup.public_id} was credited {topup.credited} times."
    wrong_amount = topups.filter(status=TopUpStatus.PAID, credited=1).exclude(
        credited_sum=F("credits")
    )
    for topup in wrong_amount:
        yield f"Top-up {topup.public_id} of {topup.credits} credits got {topup.credited_sum}."
    for topup in topups.exclude(status=TopUpStatus.PAID).filter(credited__gt=0):
        yield f"Top-up {topup.public_id} is {topup.status} but was credited."
