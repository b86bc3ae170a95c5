"""The daily roll-ups of the operations page (`apps.ops.models`): kept by a worker task every
minute (`refresh`), read by the page for the closed days of its range (`read`) and by
`/metrics` for its job counts (`job_counts`).

A day is rolled up once it is over, from the same live counting the page does for today
(`apps.ops.counts`), so both give the same figures. Jobs keep changing after their day: an
in-flight one ends, a result expires, a cost arrives. Every change to a job stamps its
`updated_at` (`Job.move`, `Job.touch`), so each refresh rolls up again the days whose jobs
changed since the last one. Top-ups are paid and ledger entries written "now", so a closed
day's money never changes. Rolling up a day again replaces it whole: any refresh can run twice,
or two at once, and leave the same rows.
"""

import contextlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from apps.billing.models import LedgerEntry, TopUp, TopUpStatus
from apps.jobs.models import Job
from apps.ops.counts import (
    COUNTED_ENTRIES,
    Cash,
    Durations,
    Group,
    live_cash,
    live_durations,
    live_groups,
)
from apps.ops.models import DayDurations, DayJobs, RolledDay

# Jobs changed this long before the last refresh began are looked at again: a transaction
# that stamped `updated_at` before that refresh read may have committed after it (a job's
# transactions last milliseconds to seconds). A changed day is so rolled up twice.
OVERLAP = timedelta(minutes=1)
DAY = timedelta(days=1)
# Durations are stored as little-endian 8-byte floats, whatever the machine.
FLOATS = np.dtype("<f8")
# A group's fields after its bucket, as `DayJobs` stores them.
GROUP_FIELDS = (
    "provider", "state", "failure_code", "server", "jobs", "cost_micros", "priced", "unpriced",
    "signed", "signing_failed", "failure_example",
)  # fmt: skip


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def refresh(*, rebuild: bool = False) -> list[date]:
    """Rolls up every closed day that is not yet, and again those whose jobs changed since the
    last refresh (all of them with `rebuild`); returns the days rolled up."""
    started = timezone.now()
    today = started.astimezone(UTC).date()
    rolled = set(RolledDay.objects.filter(day__lt=today).values_list("day", flat=True))
    # Nothing is ever dated before the first roll-up, which starts at the first day counted.
    first = min(rolled) if rolled else _first_day()
    if first is None or first >= today:
        return []
    due = {first + timedelta(days=n) for n in range((today - first).days)}
    if not rebuild:
        due -= rolled
        last = RolledDay.objects.aggregate(at=Max("rolled_at"))["at"]
        if last is not None:
            changed = Job.objects.filter(
                updated_at__gt=last - OVERLAP, created_at__lt=midnight(today)
            ).dates("created_at", "day")
            due |= set(changed) & rolled
    for day in sorted(due):
        # Another refresh rolling the same day up at the same moment wrote the same rows.
        with contextlib.suppress(IntegrityError):
            roll_up(day, started)
    return sorted(due)


def _first_day() -> date | None:
    """The first day anything happened that the page counts (each read from an index)."""
    firsts = [
        Job.objects.aggregate(at=Min("created_at"))["at"],
        LedgerEntry.objects.filter(kind__in=COUNTED_ENTRIES).aggregate(at=Min("created_at"))["at"],
        TopUp.objects.filter(status=TopUpStatus.PAID).aggregate(at=Min("paid_at"))["at"],
    ]
    known = [moment for moment in firsts if moment is not None]
    return min(known).astimezone(UTC).date() if known else None


def roll_up(day: date, rolled_at: datetime) -> None:
    """Replaces the roll-up of `day` with what the live rows say now."""
    start, end = midnight(day), midnight(day + DAY)
    groups = live_groups(start, end, "day")
    durations = live_durations(start, end, "day")
    cash = live_cash(start, end, "day").get(start, Cash())
    with transaction.atomic():
        RolledDay.objects.filter(day=day).delete()  # its rows go with it
        rolled = RolledDay.objects.create(
            day=day,
            topups=cash.topups,
            topup_cents=cash.topup_cents,
            clawback_micros=cash.clawback_micros,
            used_credits=cash.used_credits,
            rolled_at=rolled_at,
        )
        DayJobs.objects.bulk_create(
            DayJobs(
                day=rolled,
                **{name: getattr(group, name) for name in GROUP_FIELDS},
            )
            for group in groups
        )
        DayDurations.objects.bulk_create(
            DayDurations(
                day=rolled,
                provider=found.provider,
                waits=found.waits.astype(FLOATS).tobytes(),
                works=found.works.astype(FLOATS).tobytes(),
            )
            for found in durations
        )


def read(first: date, last: date) -> tuple[list[Group], list[Durations], dict[datetime, Cash]]:
    """The jobs, durations and money of the days `first` to `last` by day: from the roll-ups
    where there are some, live for the others (today, and any day not rolled up yet)."""
    days = {
        day: Cash(topups, cents, clawed, used)
        for day, topups, cents, clawed, used in RolledDay.objects.filter(
            day__gte=first, day__lte=last
        ).values_list("day", "topups", "topup_cents", "clawback_micros", "used_credits")
    }
    rows = DayJobs.objects.filter(day__gte=first, day__lte=last).values_list("day", *GROUP_FIELDS)
    groups = [Group(midnight(day), *rest) for day, *rest in rows]
    durations = [
        Durations(
            midnight(day),
            provider,
            np.frombuffer(waits, dtype=FLOATS),
            np.frombuffer(works, dtype=FLOATS),
        )
        for day, provider, waits, works in DayDurations.objects.filter(
            day__gte=first, day__lte=last
        ).values_list("day", "provider", "waits", "works")
    ]
    cash = {midnight(day): figures for day, figures in days.items()}
    for start, end in _spans(first, last, set(days)):
        groups += live_groups(start, end, "day")
        durations += live_durations(start, end, "day")
        cash.update(live_cash(start, end, "day"))
    return groups, durations, cash


def _spans(first: date, last: date, rolled: set[date]) -> Iterable[tuple[datetime, datetime]]:
    """The runs of days from `first` to `last` that are not rolled up, as time ranges."""
    start: date | None = None
    day = first
    while day <= last + DAY:
        if day in rolled or day > last:
            if start is not None:
                yield midnight(start), midnight(day)
                start = None
        elif start is None:
            start = day
        day += DAY


def job_counts() -> Counter[tuple[str, str]]:
    """Every job by (state, provider): the rolled-up days' sums, and the days after them live
    (an index-only count of today's jobs)."""
    counts: Counter[tuple[str, str]] = Counter()
    through = RolledDay.objects.aggregate(day=Max("day"))["day"]
    live = Job.objects.all()
    if through is not None:
        rolled = (
            DayJobs.objects.filter(day__lte=through)
            .order_by()
            .values_list("state", "provider")
            .annotate(n=Sum("jobs"))
        )
        counts.update({(state, provider): n for state, provider, n in rolled})
        live = live.filter(created_at__gte=midnight(through + DAY))
    for state, provider, n in (
        live.order_by().values_list("state", "provider").annotate(n=Count("id"))
    ):
        counts[state, provider] += n
    return counts
