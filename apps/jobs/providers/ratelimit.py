"""Kie's create limit as a schedule: at most 20 new tasks in any 10 seconds per API key.

Kie refuses creates beyond that budget with a 429 (the task is not queued), so the dispatcher
claims a start before it hands a job to a worker, and sends nothing the budget has no room for.

The budget is a sliding log of the start times of the last `limit` claims, kept in Django's
cache so that it outlives any one poller: a new start is allowed once the oldest of them is
more than `window + margin` seconds old. Exact to the millisecond, so a long burst runs at the
full rate (one-second buckets summed over eleven seconds gave only 20 per 11 s). The margin
covers the time between a claim and its request reaching Kie (the queue's hand-over to a
worker); a send later than that may still meet Kie's own 429, which sends the job back in line.

Only the dispatcher claims, one poller at a time; a short lock of its own still keeps two
claims from interleaving should a slow poller's lock lapse while another starts.
"""

import hashlib
import secrets
import time

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
) -> int:
    """Claims up to `wanted` starts that fit the budget now; returns how many it claimed."""
    if wanted <= 0:
        return 0
    key = _key(api_key)
    token = secrets.token_hex(8)
    give_up_at = time.monotonic() + LOCK_WAIT_SECONDS
    while not cache.add(f"{key}:lock", token, timeout=LOCK_SECONDS):
        if time.monotonic() >= give_up_at:
            return 0
        time.sleep(0.01)
    try:
        now = time.time()
        recent = _recent(key, now, window_seconds + margin_seconds)
        claimed = min(wanted, max(0, limit - len(recent)))
        if claimed:
            recent.extend([now] * claimed)
            cache.set(key, recent[-limit:], timeout=int(window_seconds + margin_seconds) + 2)
        return claimed
    finally:
        if cache.get(f"{key}:lock") == token:
            cache.delete(f"{key}:lock")


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


def _key(api_key: str) -> str:
    # The cache (Redis, the database) must never hold the key itself.
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:24]
    return f"kie-starts:{digest}"
