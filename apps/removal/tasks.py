"""Task entry points of the removal wing: a run of Unmark's own remover, in the worker that
takes it (`apps.removal.local.run`). It keeps that worker process busy for the video's length
(bounded: `REMOVER_PROCESSES` per machine), and nothing else waits on it."""

from apps.removal.local import run
from apps.taskqueue import needs_database


@needs_database
def run_removal(task_pk: int) -> None:
    run.run(task_pk)
