"""A provider account's remaining credits, for staff pages: remembered for a minute, asked in
the background, and never worth a slow page.

Kie may take its full timeout to answer (or not answer); a page asks here and waits at most
`wait_seconds`. The question keeps going in a background thread, so the next page (after a
slow answer) shows the figure. Answers are kept per process, in memory: no database or cache
work happens in that thread.
"""

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from django.core.signals import setting_changed
from django.dispatch import receiver

from apps.removal.registry import get_provider

logger = logging.getLogger(__name__)

KEEP_SECONDS = 60
# A failure is asked again sooner: the provider may be back.
KEEP_FAILURE_SECONDS = 10


@dataclass(frozen=True)
class Balance:
    credits: int | None
    # Why the figure is unknown, in the provider's words (None credits only).
    problem: str = ""


_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="provider-balance")
_lock = threading.Lock()
_answers: dict[str, tuple[float, Balance]] = {}
_asking: dict[str, Future[Balance]] = {}


def remaining_credits(name: str, *, wait_seconds: float) -> Balance:
    """The provider's balance as last known, or asked now for at most `wait_seconds`."""
    with _lock:
        if (answer := _answers.get(name)) is not None:
            answered_at, balance = answer
            keep = KEEP_SECONDS if balance.credits is not None else KEEP_FAILURE_SECONDS
            if time.monotonic() - answered_at < keep:
                return balance
        future = _asking.get(name)
        if future is None:
            future = _asking[name] = _pool.submit(_ask, name)
    try:
        return future.result(timeout=wait_seconds)
    except FutureTimeout:
        return Balance(None, f"no answer within {wait_seconds:g} s; asked again in the background")


def _ask(name: str) -> Balance:
    try:
        balance = Balance(get_provider(name).remaining_credits())
    except Exception as exc:  # a staff figure: whatever went wrong is shown, never raised
        logger.warning("provider balance unavailable", extra={"provider": name, "error": exc})
        balance = Balance(None, str(exc) or type(exc).__name__)
    with _lock:
        _answers[name] = (time.monotonic(), balance)
        _asking.pop(name, None)
    return balance


def forget() -> None:
    with _lock:
        _answers.clear()


@receiver(setting_changed)
def _forget_when_settings_change(**kwargs: object) -> None:
    # Tests point the provider at another simulator: an answer from the last one is stale.
    forget()
