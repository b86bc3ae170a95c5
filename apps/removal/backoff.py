"""How long to wait before looking at a job again.

Polling follows Kie's guidance: every 2 to 3 s for the first 30 s, every 5 to 10 s
until two minutes, then every 15 to 30 s. Retries after a provider error back off
exponentially with random jitter, so workers that failed together do not all come back
together.
"""

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def next_poll_delay(seconds_since_submit: float, *, expecting_callback: bool = False) -> float:
    if expecting_callback:
        # Kie will call back; polling only catches a callback that got lost.
        return random.uniform(30, 45)  # noqa: S311
    if seconds_since_submit < 30:
        return random.uniform(2, 3)  # noqa: S311 — jitter, not security
    if seconds_since_submit < 120:
        return random.uniform(5, 10)  # noqa: S311
    return random.uniform(15, 30)  # noqa: S311


def retry_delay(
    attempt: int, *, hint: float | None = None, base: float = 5.0, cap: float = 300.0
) -> float:
    """Delay before retry number `attempt` (1 for the first retry); never shorter than `hint`."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311
    return max(delay, hint or 0.0)


def parse_retry_after(raw: str) -> float | None:
    """Seconds from a Retry-After header, given as seconds or as an HTTP date."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
