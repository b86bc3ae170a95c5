"""Tasks the worker runs for the operations page (scheduled in `OpsConfig.ready`)."""

from datetime import date

from apps import taskqueue
from apps.ops import rollups


@taskqueue.needs_database
def refresh_rollups() -> list[date]:
    return rollups.refresh()
