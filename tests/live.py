"""Real processes for tests: a worker cluster (`manage.py worker`) sharing the test database.

The worker is a separate Python process started from `manage.py`, like in production; it
finds the test database through `DATABASE_URL`, the broker and cache through `REDIS_URL` when
the suite runs on Redis, and the Kie simulator through `KIE_SIMULATOR_PORT`.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database this test run created (a file for SQLite)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{quote(db['USER'])}{password}@{host}:{port}/{db['NAME']}"


class WorkerProcess:
    """`manage.py worker` in its own process group, stopped (or killed) by the test."""

    def __init__(self, *, var_dir: Path, simulator_port: int, extra_env: dict[str, str]) -> None:
        var_dir.mkdir(parents=True, exist_ok=True)
        self.log = var_dir / f"worker-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "DJANGO_ENV": "test",
            "DATABASE_URL": test_database_url(),
            "VAR_DIR": str(var_dir),
            "KIE_SIMULATOR_PORT": str(simulator_port),
            "Q_WORKERS": "2",
            **extra_env,
        }
        env.pop("KIE_API_KEY", None)  # no key: the worker talks to the simulator
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "worker"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """Like a machine losing power: every process of the cluster, no cleanup."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # Only the main process: SIGTERM to the whole group makes django-q2's cluster hang.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")
