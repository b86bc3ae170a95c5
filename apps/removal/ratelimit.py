"""Kie's create limit as a schedule: at most 20 new tasks in any 10 seconds per API key.

Kie refuses creates beyond that budget with a 429 (the task is not queued), so the dispatcher
claims a start before it hands a job to a worker, and sends nothing the budget has no room for.

The budget is a sliding log of the start times of the last `limit` claims, kept in Django's
cache so that it outlives any one poller: a new start is allowed once the oldest of them is
more than `window + margin` seconds old. Exact to the millisecond, so a long burst runs at the
full rate (one-second buckets summed over eleven seconds gave only 20 per 11 s). The margin
covers the network between our request and Kie's clock.

The hand-over from the dispatcher's claim to a worker's request takes time too (the queue, a
worker's pickup, the job's move; a second or more on a starved CPU), and a start that frees
while its job is still on the way is a start lost: at 20 per 10 s each second of hand-over cost
a tenth of the rate. So a start is claimed *ahead*, as long before it frees as hand-overs have
lately taken (on average) and a poller round may run late (the lead), for the moment it frees:
a worker that arrives early waits out the rest, and one that arrives late moves its claim to
the moment its request really goes out (`mark_sent`), so later claims are reckoned from that.

Only the dispatcher claims, one poller at a time; a short lock of its own still keeps two
claims from interleaving should a slow poller's lock lapse while another starts.
"""

import contextlib
import hashlib
import secrets
import time
from collections.abc import Iterator

from django.core.cache import cache

CREATE_LIMIT = 20
WINDOW_SECONDS = 10.0
# A start counts this much longer than the window: the network between our request and Kie's
# clock (the hand-over to a worker is the lead's business, below).
MARGIN_SECONDS = 0.25
LOCK_SECONDS = 2
LOCK_WAIT_SECONDS = 1.0
# The average hand-over moves by this share of the difference with each new one. The lead is
# capped so that a worker never waits longer than that for its start.
LEAD_WEIGHT = 0.2
MAX_LEAD_SECONDS = 2.0
# Added to the lead: how late a poller's round may start on a busy machine (its sleep and its
# queries run late under load, and a start claimed late is lost all the same).
ROUND_SLACK_SECONDS = 0.3

# A claim in the log: when its start may go out (or went out), and when it was claimed.
Claim = tuple[float, float]


def claim_starts(
    api_key: str,
    wanted: int,
    *,
    limit: int = CREATE_LIMIT,
    window_seconds: float = WINDOW_SECONDS,
    margin_seconds: float = MARGIN_SECONDS,
) -> tuple[int, float]:
    """Claims up to `wanted` starts that fit the budget at the moment the next start frees, if
    that is within the lead (now, while there is room); returns how many it claimed, and that
    moment, which `mark_sent` waits for and records."""
    now = time.time()
    if wanted <= 0:
        return 0, now
    span = window_seconds + margin_seconds
    with _log_lock(api_key) as key:
        if key is None:
            return 0, now
        log = _recent(key, now, span)
        at = _next_free(log, now, limit, span)
        if at - now > _lead(key):
            return 0, now
        counting = [claim for claim in log if claim[0] > at - span]
        claimed = min(wanted, max(0, limit - len(counting)))
        if claimed:
            _save(key, log + [(at, now)] * claimed, limit, span)
        return claimed, at


def mark_sent(
    api_key: str,
    claimed_at: float,
    *,
    limit: int = CREATE_LIMIT,
    window_seconds: float = WINDOW_SECONDS,
    margin_seconds: float = MARGIN_SECONDS,
) -> None:
    """Waits for a start claimed ahead to free, then moves it to now, as its request goes out:
    a send that waited in the queue pushes later claims back, so the creates Kie sees keep to
    the limit however long the hand-over took. The hand-over's length tunes the lead."""
    arrived = time.time()
    if claimed_at > arrived:
        time.sleep(min(claimed_at - arrived, MAX_LEAD_SECONDS))
    span = window_seconds + margin_seconds
    with _log_lock(api_key) as key:
        if key is None:
            return
        now = time.time()
        log = _recent(key, now, span)
        mine = next((claim for claim in log if claim[0] == claimed_at), None)
        if mine is not None:
            log.remove(mine)
            hand_over = (1 - LEAD_WEIGHT) * _hand_over(key) + LEAD_WEIGHT * (arrived - mine[1])
            cache.set(f"{key}:hand-over", hand_over, timeout=None)
        _save(key, [*log, (now, now)], limit, span)


def seconds_until_free(
    api_key: str,
    *,
    limit: int = CREATE_LIMIT,
    window_seconds: float = WINDOW_SECONDS,
    margin_seconds: float = MARGIN_SECONDS,
) -> float:
    """How long until a start can be claimed: the lead before the next one frees (0 when one
    can be claimed now)."""
    now = time.time()
    key = _key(api_key)
    span = window_seconds + margin_seconds
    return max(0.0, _next_free(_recent(key, now, span), now, limit, span) - now - _lead(key))


def _next_free(log: list[Claim], now: float, limit: int, span: float) -> float:
    """When the budget next has room: now, or when the oldest start still counting leaves."""
    if len(log) < limit:
        return now
    return max(now, log[-limit][0] + span)


def _lead(key: str) -> float:
    """How long before a start frees it may be claimed."""
    return min(MAX_LEAD_SECONDS, _hand_over(key) + ROUND_SLACK_SECONDS)


def _hand_over(key: str) -> float:
    """How long the last hand-overs took from claim to worker, on average."""
    return float(cache.get(f"{key}:hand-over") or 0.0)


def _recent(key: str, now: float, span: float) -> list[Claim]:
    log = cache.get(key) or []
    return [(at, made) for at, made in log if at > now - span]


def _save(key: str, log: list[Claim], limit: int, span: float) -> None:
    cache.set(key, sorted(log)[-limit:], timeout=int(span) + 2)


@contextlib.contextmanager
def _log_lock(api_key: str) -> Iterator[str | None]:
    """The log's key, held for one read and write; None if the lock could not be had."""
    key = _key(api_key)
    token = secrets.token_hex(8)
    give_up_at = time.monotonic() + LOCK_WAIT_SECONDS
    while not cache.add(f"{key}:lock", token, timeout=LOCK_SECONDS):
        if time.monotonic() >= give_up_at:
            yield None
            return
        time.sleep(0.01)
    try:
        yield key
    finally:
        if cache.get(f"{key}:lock") == token:
            cache.delete(f"{key}:lock")


def _key(api_key: str) -> str:
    # The cache (Redis, the database) must never hold the key itself.
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:24]
    # Named anew when the log began to hold (at, made) pairs: a log of plain times left by an
    # older release is never read as one.
    return f"kie-claims:{digest}"
