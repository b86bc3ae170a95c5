"""Tasks the worker runs for the API (scheduled in `ApiConfig.ready`)."""

from apps.api import idempotency
from apps.jobs import queue


@queue.needs_database
def forget_idempotency_keys() -> int:
    return idempotency.forget_old()
