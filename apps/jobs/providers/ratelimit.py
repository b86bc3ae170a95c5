"""Client-side limit on Kie task creation: at most 20 per 10 seconds per API key.

Kie refuses creates beyond that budget with a 429 (the task is not queued), so the client keeps
under it instead of discovering it. Every web and worker process shares the count through
Django's cache, in one-second buckets:

- the current bucket is incremented first, then the last `window` buckets plus the current one
  are summed; over the limit, the increment is undone and the create refused. Summing one bucket
  more than the window covers the partial second at its start, so no 10-second span can ever
  see more than `limit` creates. Concurrent callers may both refuse at the edge; never both pass.
- With Redis (`REDIS_URL`), `add` and `incr` are atomic and the guarantee is exact. With the
  database cache of the embedded stack, `incr` is a read then a write, so two processes creating
  in the same instant may both pass: best effort, which is enough for one local worker.

Refusal never waits: it raises `RateLimited` with the seconds until a slot frees, and the
caller schedules its retry (no worker sleeps on the budget).
"""

import contextlib
import hashlib
import math
import time

from django.core.cache import cache

from apps.jobs.providers.base import RateLimited

CREATE_LIMIT = 20
WINDOW_SECONDS = 10


def take_create_slot(
    api_key: str, *, limit: int = CREATE_LIMIT, window_seconds: int = WINDOW_SECONDS
) -> None:
    """Counts one task creation for `api_key`, or raises RateLimited when the budget is spent."""
    now = time.time()
    current = int(now)
    prefix = _key_prefix(api_key)
    key = f"{prefix}:{current}"
    # A bucket must outlive the window it is summed in (current + `window_seconds` seconds).
    if not cache.add(key, 1, timeout=window_seconds + 2):
        _increment(key, window_seconds)

    seconds = range(current - window_seconds, current + 1)
    counts = cache.get_many([f"{prefix}:{second}" for second in seconds])
    per_second = [(second, int(counts.get(f"{prefix}:{second}", 0))) for second in seconds]
    if sum(count for _, count in per_second) <= limit:
        return

    with contextlib.suppress(ValueError):  # a culled bucket has nothing left to undo
        cache.decr(key)
    raise RateLimited(
        f"Held back: at most {limit} new Kie tasks per {window_seconds} s",
        code="429",
        retry_after=_seconds_until_free(per_second, now, limit, window_seconds),
    )


def free_create_slots(
    api_key: str, *, limit: int = CREATE_LIMIT, window_seconds: int = WINDOW_SECONDS
) -> int:
    """Creates the budget has room for now (read only): lets callers send no more than that,
    instead of sending everything and having most of it refused."""
    current = int(time.time())
    prefix = _key_prefix(api_key)
    keys = [f"{prefix}:{second}" for second in range(current - window_seconds, current + 1)]
    used = sum(int(count) for count in cache.get_many(keys).values())
    return max(0, limit - used)


def _key_prefix(api_key: str) -> str:
    # The cache (Redis, the database) must never hold the key itself.
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:24]
    return f"kie-creates:{digest}"


def _increment(key: str, window_seconds: int) -> None:
    try:
        cache.incr(key)
    except ValueError:
        # The database cache culls entries when it is full; start the bucket again.
        cache.add(key, 1, timeout=window_seconds + 2)


def _seconds_until_free(
    per_second: list[tuple[int, int]], now: float, limit: int, window_seconds: int
) -> float:
    """When enough old buckets leave the window for one more create (ours was undone)."""
    remaining = sum(count for _, count in per_second) - 1
    for second, count in per_second:
        remaining -= count
        if remaining < limit:
            # Bucket `second` stops being summed once the current second is past the window.
            return max(0.1, math.ceil((second + window_seconds + 1 - now) * 10) / 10)
    return float(window_seconds + 1)
