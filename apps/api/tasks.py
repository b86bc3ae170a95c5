"""Tasks the worker runs for the API (scheduled in `ApiConfig.ready`)."""

from apps import taskqueue
from apps.api import idempotency


@taskqueue.needs_database
def forget_idempotency_keys() -> int:
    return idempotency.forget_old()
