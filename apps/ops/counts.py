"""What the operations page counts, in the shape both its sources give: live from the jobs, ledger
and top-ups of a time range (`live_groups`, `live_cash`), or read back from the daily roll-ups
(`apps.ops.rollups`), which store exactly what these return for a closed day.

Jobs are counted by when they were created (a video belongs to the day it was submitted,
whatever happened to it later), money by when it moved. All times are UTC.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    Max,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Trunc

from apps.billing.models import EntryKind, LedgerEntry, TopUp, TopUpStatus
from apps.jobs.models import Job, JobState

SUCCEEDED = (JobState.SUCCEEDED, JobState.EXPIRED)  # an expired job succeeded, then aged
ENDED = (*SUCCEEDED, JobState.FAILED)
MICROS_PER_CENT = 10_000
# The failure code of a job whose result could not be given its Content Credentials.
SIGNING_FAILED = "signing"
# The ledger entries the page counts: what the videos used, and what refunds took back.
COUNTED_ENTRIES = (EntryKind.CLAWBACK, EntryKind.CAPTURE)
# What tells the jobs of one time bucket apart on the page.
GROUP_KEY = ("provider", "state", "failure_code", "server")


@dataclass
class Group:
    """The jobs of one time bucket that share a provider, a state, a failure code and, for
    those that succeeded, the machine that cleaned them (the pool's figures)."""

    bucket: datetime
    provider: str
    state: str
    failure_code: str
    server: str
    jobs: int = 0
    cost_micros: int = 0
    priced: int = 0
    unpriced: int = 0  # reached a provider, no cost recorded
    signed: int = 0
    signing_failed: int = 0
    failure_example: str = ""


@dataclass
class Durations:
    """The seconds, from creation to the (last) send and from the send to the end, of the
    videos of one time bucket and provider that were sent and ended; each array sorted."""

    bucket: datetime
    provider: str
    waits: np.ndarray
    works: np.ndarray


@dataclass
class Cash:
    """The money of one time bucket: top-ups paid, and ledger entries written."""

    topups: int = 0
    topup_cents: int = 0
    clawback_micros: int = 0
    used_credits: int = 0


def live_groups(start: datetime, end: datetime, bucket: str) -> list[Group]:
    """The jobs created in [start, end) by `bucket` ("hour" or "day"), in one aggregate pass."""
    rows = (
        _created(start, end, bucket)
        .values(
            "bucket",
            "provider",
            "state",
            "failure_code",
            server=Case(When(state__in=SUCCEEDED, then=F("provider_server")), default=Value("")),
        )
        .annotate(
            jobs=Count("id"),
            cost_micros=Sum("provider_cost_micros", default=0),
            priced=Count("provider_cost_micros"),
            unpriced=Count("id", filter=Q(task_id__gt="", provider_cost_micros__isnull=True)),
            signed=Count("id", filter=Q(credentials__isnull=False)),
            signing_failed=Count("id", filter=Q(failure_code=SIGNING_FAILED)),
            failure_example=Max("failure_message", default=""),
        )
    )
    return [Group(**row) for row in rows]


def live_durations(start: datetime, end: datetime, bucket: str) -> list[Durations]:
    """The durations of the jobs created in [start, end) that were sent and ended, by `bucket`
    and provider: ranked here, so that live rows and roll-ups give the same percentiles by the
    same arithmetic."""
    ended = (
        _created(start, end, bucket)
        .filter(state__in=ENDED, submitted_at__isnull=False, finished_at__isnull=False)
        .values_list("bucket", "provider", "created_at", "submitted_at", "finished_at")
    )
    waits: dict[tuple[datetime, str], list[float]] = defaultdict(list)
    works: dict[tuple[datetime, str], list[float]] = defaultdict(list)
    for moment, provider, created, submitted, finished in ended.iterator(chunk_size=5000):
        # Never None: the filter keeps only jobs that were sent and ended.
        sent, done = cast(datetime, submitted), cast(datetime, finished)
        waits[moment, provider].append((sent - created).total_seconds())
        works[moment, provider].append((done - sent).total_seconds())
    return [
        Durations(
            moment, provider, np.sort(waits[moment, provider]), np.sort(works[moment, provider])
        )
        for moment, provider in waits
    ]


def _created(start: datetime, end: datetime, bucket: str) -> Any:
    return (
        Job.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(bucket=Trunc("created_at", bucket, tzinfo=UTC))
        .order_by()
    )


def _clawback_micros() -> Any:
    # A clawback takes back credits; its money is their share of the top-up's price.
    return ExpressionWrapper(
        -F("amount") * F("topup__amount_cents") * MICROS_PER_CENT / F("topup__credits"),
        output_field=BigIntegerField(),
    )


def live_cash(start: datetime, end: datetime, bucket: str) -> dict[datetime, Cash]:
    """The money of [start, end) by `bucket` (only the buckets where some moved)."""
    cash: dict[datetime, Cash] = {}
    paid = (
        TopUp.objects.filter(status=TopUpStatus.PAID, paid_at__gte=start, paid_at__lt=end)
        .annotate(bucket=Trunc("paid_at", bucket, tzinfo=UTC))
        .order_by()
        .values_list("bucket")
        .annotate(count=Count("id"), cents=Sum("amount_cents"))
    )
    for moment, count, cents in paid:
        found = cash.setdefault(moment, Cash())
        found.topups, found.topup_cents = count, cents
    entries = (
        LedgerEntry.objects.filter(
            kind__in=COUNTED_ENTRIES,
            created_at__gte=start,
            created_at__lt=end,
        )
        .annotate(bucket=Trunc("created_at", bucket, tzinfo=UTC))
        .order_by()
        .values_list("bucket")
        .annotate(
            clawed=Sum(_clawback_micros(), filter=Q(kind=EntryKind.CLAWBACK), default=0),
            used=Sum("amount", filter=Q(kind=EntryKind.CAPTURE), default=0),
        )
    )
    for moment, clawed, used in entries:
        found = cash.setdefault(moment, Cash())
        found.clawback_micros, found.used_credits = clawed, -used
    return cash
