"""The figures of the operations page, built once per request by `build(period)`: the page and
its CSV export both render what this returns.

The jobs and money of a range come counted by time bucket (`apps.ops.counts`): a range of days
reads the daily roll-ups for its closed days and counts only today (and any day not rolled up
yet) live (`apps.ops.rollups`); two days or less, shown by hour, are counted live. The queue,
the machines, the credits outstanding and the alerts are read as they are now.

Waiting is the time from a video's creation to its (last) send to a provider, processing the
time from that send to its end; percentiles are PostgreSQL's `percentile_cont` definition
(linear interpolation between the two nearest values), computed here from the durations the
counts and the roll-ups carry.

On PostgreSQL the figures are read in one transaction with a larger `work_mem`: grouping the
days not rolled up yet (every day, before the first roll-up) then hashes in memory instead of
sorting on disk.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from apps.billing.models import Wallet
from apps.jobs.models import IN_FLIGHT_STATES, Job, JobState
from apps.ops import rollups
from apps.ops.counts import (
    ENDED,
    MICROS_PER_CENT,
    SUCCEEDED,
    Cash,
    Durations,
    Group,
    live_cash,
    live_durations,
    live_groups,
)
from apps.removal import balance
from apps.removal.models import ProviderAlert
from apps.removal.registry import REGISTRY, get_provider

# A range longer than this is shown by day, a shorter one by hour.
HOURLY_UP_TO = timedelta(days=2)
LONGEST_RANGE = timedelta(days=366)
# How long the page waits for a provider's balance before saying it is unknown.
BALANCE_WAIT_SECONDS = 0.5
TOP_FAILURES = 10


@dataclass(frozen=True)
class Period:
    """Whole UTC days, `first` to `last` included."""

    first: date
    last: date

    @classmethod
    def last_days(cls, days: int, *, today: date | None = None) -> "Period":
        today = today or timezone.now().astimezone(UTC).date()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def bucket(self) -> str:
        return "hour" if self.end - self.start <= HOURLY_UP_TO else "day"

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self.bucket == "hour" else timedelta(days=1)

    @property
    def hours_so_far(self) -> float:
        """The hours of the period that have passed: today's are not all over yet."""
        return max((min(self.end, timezone.now()) - self.start).total_seconds(), 0) / 3600

    def buckets(self) -> list[datetime]:
        count = int((self.end - self.start) / self.step)
        return [self.start + i * self.step for i in range(count)]

    def label(self, moment: datetime) -> str:
        return f"{moment:%d %b %H:00}" if self.bucket == "hour" else f"{moment:%d %b}"


# --- Percentiles ------------------------------------------------------------------------------
def percentile_cont(values: Sequence[float] | np.ndarray, fraction: float) -> float | None:
    """The same as PostgreSQL's `percentile_cont` for sorted `values` (None when empty)."""
    if len(values) == 0:
        return None
    position = fraction * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return float(values[low] + (values[high] - values[low]) * (position - low))


@dataclass(frozen=True)
class Timing:
    """Waiting and processing of the videos of one group (a provider, a time bucket, all)."""

    count: int = 0
    wait_p50: float | None = None
    wait_p95: float | None = None
    work_p50: float | None = None
    work_p95: float | None = None

    @classmethod
    def of(cls, durations: Iterable[Durations]) -> "Timing":
        """Of the videos of `durations`: their values merged, then ranked."""
        found = list(durations)
        waits = np.sort(np.concatenate([d.waits for d in found])) if found else np.empty(0)
        works = np.sort(np.concatenate([d.works for d in found])) if found else np.empty(0)
        return cls(
            len(waits),
            percentile_cont(waits, 0.5),
            percentile_cont(waits, 0.95),
            percentile_cont(works, 0.5),
            percentile_cont(works, 0.95),
        )


# --- The figures ------------------------------------------------------------------------------
@dataclass
class Series:
    """Counts or amounts per time bucket, under one name."""

    name: str
    values: list[float]

    @property
    def total(self) -> float:
        return sum(self.values)


@dataclass(frozen=True)
class Failure:
    code: str
    count: int
    example: str


@dataclass(frozen=True)
class Waiting:
    provider: str
    queued: int
    oldest_created_at: datetime | None
    in_flight: int

    @property
    def oldest_seconds(self) -> float | None:
        if self.oldest_created_at is None:
            return None
        return max((timezone.now() - self.oldest_created_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class Server:
    """One machine of a provider that runs its own (an SWC server)."""

    provider: str
    url: str
    status: str  # "busy", "idle", "down" or "removed" (no longer configured)
    busy: int
    done: int
    per_hour: float
    down_reason: str


@dataclass(frozen=True)
class Signing:
    """Results given their Content Credentials in the period, and jobs failed because a result
    could not be signed (refunded: no unsigned result is delivered)."""

    signed: int
    failed: int


@dataclass(frozen=True)
class ProviderBalance:
    """What is left on the account of a provider paid in advance."""

    provider: str
    label: str
    balance: balance.Balance


@dataclass(frozen=True)
class ProviderSpend:
    provider: str
    micros: int
    priced: int
    unpriced: int


@dataclass
class Money:
    """Cash in (top-ups), out (provider spend) and what the videos earned, in micro-dollars."""

    topups: int
    topups_micros: int
    clawbacks_micros: int
    used_credits: int
    spend: list[ProviderSpend]

    @property
    def net_topups_micros(self) -> int:
        return self.topups_micros - self.clawbacks_micros

    @property
    def used_micros(self) -> int:
        return self.used_credits * micros_per_credit()

    @property
    def spend_micros(self) -> int:
        return sum(row.micros for row in self.spend)

    @property
    def unpriced(self) -> int:
        """Videos that reached a provider whose cost nobody recorded: spend is a floor."""
        return sum(row.unpriced for row in self.spend)

    @property
    def cash_margin_micros(self) -> int:
        return self.net_topups_micros - self.spend_micros

    @property
    def video_margin_micros(self) -> int:
        return self.used_micros - self.spend_micros


@dataclass(frozen=True)
class Outstanding:
    """Credits teams hold and have not spent: balances (free grants included), of which `held`
    are reserved by videos in progress."""

    balance: int
    held: int

    @property
    def micros(self) -> int:
        return self.balance * micros_per_credit()


@dataclass
class Figures:
    period: Period
    buckets: list[datetime]
    by_state: list[Series]
    by_provider: list[Series]
    success_rate: list[float | None]
    failures: list[Failure]
    timing: Timing
    timing_by_provider: dict[str, Timing]
    timing_by_bucket: list[Timing]
    signing: Signing
    waiting: list[Waiting]
    pool: list[Server]
    money: Money
    revenue: Series
    spend: Series
    outstanding: Outstanding
    balances: list[ProviderBalance]
    alerts: list[ProviderAlert]
    generated_at: datetime = field(default_factory=timezone.now)

    @property
    def videos(self) -> int:
        return int(sum(series.total for series in self.by_state))

    def count_in(self, *states: str) -> int:
        return int(sum(s.total for s in self.by_state if s.name in states))

    @property
    def succeeded(self) -> int:
        return self.count_in(*SUCCEEDED)

    @property
    def failed(self) -> int:
        return self.count_in(JobState.FAILED)

    @property
    def overall_success_rate(self) -> float | None:
        ended = self.succeeded + self.failed
        return self.succeeded / ended if ended else None

    @property
    def labels(self) -> list[str]:
        return [self.period.label(moment) for moment in self.buckets]

    def rows(self) -> Iterator[tuple[str, str, str, object]]:
        """Every figure as (section, subject, measure, value): the CSV export."""
        yield ("range", "utc", "first_day", self.period.first.isoformat())
        yield ("range", "utc", "last_day", self.period.last.isoformat())
        yield ("range", "utc", "bucket", self.period.bucket)
        by = {"videos_by_state": self.by_state, "videos_by_provider": self.by_provider}
        for section, all_series in by.items():
            for series in all_series:
                for moment, value in zip(self.buckets, series.values, strict=True):
                    yield (section, moment.isoformat(), series.name, int(value))
        yield ("outcomes", "all", "videos", self.videos)
        yield ("outcomes", "all", "succeeded", self.succeeded)
        yield ("outcomes", "all", "failed", self.failed)
        yield ("content_credentials", "results", "signed", self.signing.signed)
        yield ("content_credentials", "results", "signing_failed", self.signing.failed)
        yield ("outcomes", "all", "success_rate", _rounded(self.overall_success_rate, 4))
        for moment, rate in zip(self.buckets, self.success_rate, strict=True):
            yield ("success_rate", moment.isoformat(), "success_rate", _rounded(rate, 4))
        for failure in self.failures:
            yield ("failures", failure.code or "(none)", "videos", failure.count)
        for name, timing in [("all", self.timing), *self.timing_by_provider.items()]:
            yield ("timings", name, "videos", timing.count)
            for measure in ("wait_p50", "wait_p95", "work_p50", "work_p95"):
                yield ("timings", name, f"{measure}_seconds", _rounded(getattr(timing, measure), 3))
        for row in self.waiting:
            yield ("queue", row.provider, "waiting", row.queued)
            yield ("queue", row.provider, "oldest_wait_seconds", _rounded(row.oldest_seconds, 1))
            yield ("queue", row.provider, "in_flight", row.in_flight)
        for server in self.pool:
            section = f"{server.provider}_machines"
            yield (section, server.url, "status", server.status)
            yield (section, server.url, "busy", server.busy)
            yield (section, server.url, "videos_done", server.done)
            yield (section, server.url, "videos_per_hour", _rounded(server.per_hour, 3))
        money = self.money
        yield ("money", "topups", "count", money.topups)
        yield ("money", "topups", "usd", usd(money.topups_micros))
        yield ("money", "refunds_and_disputes", "usd", usd(money.clawbacks_micros))
        yield ("money", "net_topups", "usd", usd(money.net_topups_micros))
        yield ("money", "credits_used", "credits", money.used_credits)
        yield ("money", "credits_used", "usd", usd(money.used_micros))
        for spend in money.spend:
            yield ("money", f"spend_{spend.provider}", "usd", usd(spend.micros))
            yield ("money", f"spend_{spend.provider}", "videos_without_cost", spend.unpriced)
        yield ("money", "spend", "usd", usd(money.spend_micros))
        yield ("money", "margin_on_topups", "usd", usd(money.cash_margin_micros))
        yield ("money", "margin_on_videos", "usd", usd(money.video_margin_micros))
        yield ("credits_outstanding", "all_teams", "credits", self.outstanding.balance)
        yield ("credits_outstanding", "all_teams", "held_credits", self.outstanding.held)
        yield ("credits_outstanding", "all_teams", "usd", usd(self.outstanding.micros))
        for account in self.balances:
            credits = account.balance.credits
            yield (
                "provider_balance",
                account.provider,
                "credits",
                credits if credits is not None else "unknown",
            )
        for alert in self.alerts:
            yield (
                "open_alerts",
                f"{alert.provider}:{alert.kind}",
                "occurrences",
                alert.occurrences,
            )


def micros_per_credit() -> int:
    return int(settings.USD_PER_CREDIT * 1_000_000)


def usd(micros: int) -> Decimal:
    """Micro-dollars as dollars and cents (rounded half away from zero, as money is)."""
    return (Decimal(micros) / 1_000_000).quantize(Decimal("0.01"))


def _rounded(value: float | None, digits: int) -> object:
    return "" if value is None else round(value, digits)


def build(period: Period) -> Figures:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '32MB'")
        return _build(period)


def _build(period: Period) -> Figures:
    if period.bucket == "hour":
        # Two days at most: few enough rows to count live.
        groups = live_groups(period.start, period.end, "hour")
        durations = live_durations(period.start, period.end, "hour")
        cash = live_cash(period.start, period.end, "hour")
    else:
        groups, durations, cash = rollups.read(period.first, period.last)
    buckets = period.buckets()
    position = {moment: i for i, moment in enumerate(buckets)}
    by_state: dict[str, list[float]] = {}
    by_provider: dict[str, list[float]] = {}
    spend_micros = [0] * len(buckets)
    spend: dict[str, ProviderSpend] = {}
    failures: dict[str, Failure] = {}
    signing = Signing(0, 0)
    for group in groups:
        i, provider = position[group.bucket], group.provider
        by_state.setdefault(group.state, [0] * len(buckets))[i] += group.jobs
        by_provider.setdefault(provider, [0] * len(buckets))[i] += group.jobs
        spend_micros[i] += group.cost_micros
        signing = Signing(signing.signed + group.signed, signing.failed + group.signing_failed)
        known = spend.get(provider, ProviderSpend(provider, 0, 0, 0))
        # A cost is recorded when a provider finishes; one that ended without it is unpriced.
        spend[provider] = ProviderSpend(
            provider,
            known.micros + group.cost_micros,
            known.priced + group.priced,
            known.unpriced + (group.unpriced if group.state in ENDED else 0),
        )
        if group.state == JobState.FAILED:
            code = group.failure_code
            seen = failures.get(code, Failure(code, 0, ""))
            example = max(seen.example, group.failure_example)
            failures[code] = Failure(code, seen.count + group.jobs, example)
    states = [Series(state, by_state[state]) for state in JobState.values if state in by_state]

    success_rate: list[float | None] = []
    for i in range(len(buckets)):
        good = sum(by_state.get(state, [0] * len(buckets))[i] for state in SUCCEEDED)
        bad = by_state.get(JobState.FAILED, [0] * len(buckets))[i]
        success_rate.append(good / (good + bad) if good + bad else None)

    by_bucket: dict[datetime, list[Durations]] = defaultdict(list)
    of_provider: dict[str, list[Durations]] = defaultdict(list)
    for found in durations:
        by_bucket[found.bucket].append(found)
        of_provider[found.provider].append(found)

    return Figures(
        period=period,
        buckets=buckets,
        by_state=states,
        by_provider=[Series(name, values) for name, values in sorted(by_provider.items())],
        success_rate=success_rate,
        failures=sorted(failures.values(), key=lambda f: (-f.count, f.code))[:TOP_FAILURES],
        timing=Timing.of(durations),
        timing_by_provider={name: Timing.of(of_provider[name]) for name in sorted(of_provider)},
        timing_by_bucket=[Timing.of(by_bucket[moment]) for moment in buckets],
        signing=signing,
        waiting=_waiting(),
        pool=_pool(groups, period),
        money=_money(cash.values(), [spend[name] for name in sorted(spend)]),
        revenue=Series(
            "Top-ups paid ($)",
            [
                cash.get(moment, Cash()).topup_cents * MICROS_PER_CENT / 1_000_000
                for moment in buckets
            ],
        ),
        spend=Series("Provider spend ($)", [micros / 1_000_000 for micros in spend_micros]),
        outstanding=_outstanding(),
        balances=_balances(),
        alerts=list(ProviderAlert.objects.filter(resolved_at__isnull=True)),
    )


def _waiting() -> list[Waiting]:
    """The queue now, per provider: jobs waiting to be sent, the oldest of them, and jobs with
    the provider (sending, processing, saving)."""
    rows = (
        Job.objects.filter(state__in=IN_FLIGHT_STATES)
        .order_by()
        .values("provider")
        .annotate(
            queued=Count("id", filter=Q(state=JobState.QUEUED)),
            oldest=Min("created_at", filter=Q(state=JobState.QUEUED)),
            in_flight=Count("id", filter=~Q(state=JobState.QUEUED)),
        )
    )
    found: dict[str, dict[str, Any]] = {row["provider"]: dict(row) for row in rows}
    empty = {"queued": 0, "oldest": None, "in_flight": 0}
    return [
        Waiting(name, row["queued"], row["oldest"], row["in_flight"])
        for name in sorted({*REGISTRY, *found})
        for row in [found.get(name, empty)]
    ]


def _pool(groups: list[Group], period: Period) -> list[Server]:
    """Every machine of the providers that run their own, with what each did in the period."""
    done: Counter[tuple[str, str]] = Counter()
    for group in groups:
        if group.state in SUCCEEDED:
            done[group.provider, group.server] += group.jobs
    hours = period.hours_so_far
    servers = []
    for name in REGISTRY:
        for machine in get_provider(name).machines():
            count = done[name, machine.address]
            servers.append(
                Server(
                    name,
                    machine.address,
                    machine.status,
                    machine.busy,
                    count,
                    count / hours if hours else 0.0,
                    machine.down_reason,
                )
            )
    return servers


def _balances() -> list[ProviderBalance]:
    """Providers paid in advance: their remaining credits, asked at most once a minute."""
    return [
        ProviderBalance(
            name,
            provider.label,
            balance.remaining_credits(name, wait_seconds=BALANCE_WAIT_SECONDS),
        )
        for name in REGISTRY
        if (provider := get_provider(name)).keeps_a_balance
    ]


def _money(cash: Iterable[Cash], spend: list[ProviderSpend]) -> Money:
    buckets = list(cash)
    return Money(
        topups=sum(bucket.topups for bucket in buckets),
        topups_micros=sum(bucket.topup_cents for bucket in buckets) * MICROS_PER_CENT,
        clawbacks_micros=sum(bucket.clawback_micros for bucket in buckets),
        used_credits=sum(bucket.used_credits for bucket in buckets),
        spend=spend,
    )


def _outstanding() -> Outstanding:
    totals = Wallet.objects.aggregate(balance=Sum("balance"), held=Sum("held"))
    return Outstanding(totals["balance"] or 0, totals["held"] or 0)


def flatten(rows: Iterable[tuple[str, str, str, object]]) -> Iterator[list[str]]:
    """CSV lines of `Figures.rows()`, with a header."""
    yield ["section", "subject", "measure", "value"]
    for row in rows:
        yield [str(cell) for cell in row]
