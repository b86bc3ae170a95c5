"""Requests per API key per minute, counted in the shared cache (Redis in production).

A fixed one-minute window: `cache.add` then `cache.incr`, both atomic in Redis, so concurrent
requests on several machines count exactly. (Ninja's own throttles keep a list of times that
each request reads and writes back whole, which loses counts under concurrency.)
"""

import math
import time

from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 60


def seconds_to_wait(key_id: int) -> int | None:
    """Counts one request of this key; None if it is within the limit, else how many seconds
    until the next window opens."""
    now = time.time()
    window_start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    counter = f"api:rate:{key_id}:{window_start}"
    cache.add(counter, 0, timeout=WINDOW_SECONDS + 5)
    try:
        count = cache.incr(counter)
    except ValueError:  # the counter expired between the two calls
        cache.add(counter, 1, timeout=WINDOW_SECONDS + 5)
        count = 1
    if count <= settings.API_RATE_PER_MINUTE:
        return None
    return max(1, math.ceil(window_start + WINDOW_SECONDS - now))
