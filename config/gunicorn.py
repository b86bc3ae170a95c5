"""gunicorn settings (`gunicorn -c config/gunicorn.py config.wsgi`), used by `make run`.

With `PROMETHEUS_MULTIPROC_DIR` set, each worker process keeps its metrics in files there and
`/metrics` adds them up; when a worker exits its files are marked dead, so the live gauges of
a process that is gone stop counting (counters and histograms keep what it recorded). Point
the variable at an empty directory that only this machine's processes share, emptied at each
start (a tmpfs in a container).
"""

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
