"""Real threads racing through the app, each with its own database connection (PostgreSQL tests)."""

import threading
from collections.abc import Callable

from django.db import connections

from apps.billing import ledger


def run_at_once[T](count: int, work: Callable[[int], T]) -> list[T | Exception]:
    """Runs work(0) … work(count - 1) in threads released together; returns results or errors."""
    start = threading.Barrier(count)
    results: list[T | Exception] = [RuntimeError("did not run")] * count

    def run(index: int) -> None:
        try:
            start.wait(timeout=30)
            results[index] = work(index)
        except Exception as exc:  # the test inspects every outcome
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


class AvailableWatcher:
    """Reads the wallet over and over from its own connection while the race runs."""

    def __init__(self, team) -> None:
        self.team = team
        self.lowest: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def _watch(self) -> None:
        try:
            while not self._stop.is_set():
                available = ledger.available_credits(self.team)
                self.lowest = available if self.lowest is None else min(self.lowest, available)
        finally:
            connections.close_all()

    def __enter__(self) -> "AvailableWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
