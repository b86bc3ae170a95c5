"""Kie's create limit as a schedule: at most 20 new tasks in any 10 seconds per API key.

Kie refuses creates beyond that budget with a 429 (the task is not queued), so the dispatcher
claims a start before it hands a job to a worker, and sends nothing the budget has no room for.

The budget is a sliding log of the start times of the last `limit` claims, kept in Django's
cache so that it outlives any one poller: a new start is allowed once the oldest of them is
more than `window + margin` seconds old. Exact to the millisecond, so a long burst runs at the
full rate (one-second buckets summed over eleven seconds gave only 20 per 11 s). The margin
covers the network between our request and Kie's clock. The hand-over to a worker can take
longer (the queue may hold checks ahead of the send), so the worker moves its claim to the
moment its request really goes out (`mark_sent`), and later claims are reckoned from that.

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
# Between a claim and its request reaching the provider: the queue hand-over to a worker.
MARGIN_SECONDS = 0.25
LOCK_SECONDS = 2
LOCK_WAIT_SECONDS = 1.0


def claim_starts(
    api_key: str,
    wanted: int,
    *,
    limit: int = CREATE_LIMIT,
    window_seconds: float = WINDOW_SECONDS,
    margin_seconds: float = MARGIN_SECONDS,
) -> tuple[int, float]:
    """Claims up to `wanted` starts that fit the budget now; returns how many it claimed, and
    the claim time that `mark_sent` takes to record when each really goes out."""
    now = time.time()
    if wanted <= 0:
        return 0, now
    with _log_lock(api_key) as key:
        if key is None:
            return 0, now
        recent = _recent(key, now, window_seconds + margin_seconds)
        claimed = min(wanted, max(0, limit - len(recent)))
        if claimed:
            recent.extend([now] * claimed)
            _save(key, recent, limit, window_seconds + margin_seconds)
        return claimed, now


def mark_sent(
    api_key: str,
    claimed_at: float,
    *,
    limit: int = CREATE_LIMIT,
    window_seconds: float = WINDOW_SECONDS,
    margin_seconds: float = MARGIN_SECONDS,
) -> None:
    """Moves one start claimed at `claimed_at` to now, as its request goes out: a send that
    waited in the queue then pushes later claims back, so the creates Kie sees keep to the
    limit however long the hand-over took."""
    with _log_lock(api_key) as key:
        if key is None:
            return
        now = time.time()
        recent = _recent(key, now, window_seconds + margin_seconds)
        if claimed_at in recent:
            recent.remove(claimed_at)
        recent.append(now)
        _save(key, sorted(recent), limit, window_seconds + margin_seconds)


def seconds_until_free(
    api_key: str,
    *,
    limit: int = CREATE_LIMIT,
    window_seconds: float = WINDOW_SECONDS,
    margin_seconds: float = MARGIN_SECONDS,
) -> float:
    """How long until the budget has room for one more start (0 when it has now)."""
    now = time.time()
    span = window_seconds + margin_seconds
    recent = _recent(_key(api_key), now, span)
    if len(recent) < limit:
        return 0.0
    return max(0.0, recent[-limit] + span - now)


def _recent(key: str, now: float, span: float) -> list[float]:
    log = cache.get(key) or []
    return [started for started in log if started > now - span]


def _save(key: str, recent: list[float], limit: int, span: float) -> None:
    cache.set(key, recent[-limit:], timeout=int(span) + 2)


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
    return f"kie-starts:{digest}"
