"""Real processes for tests and benchmarks: a worker cluster (`manage.py worker`) sharing the
test database, gunicorn, a TCP proxy (or round-robin balancer), and the waits around them.

The worker is a separate Python process started from `manage.py`, like in production; it
finds the test database through `DATABASE_URL`, the broker and cache through `REDIS_URL` when
the suite runs on Redis, and the Kie simulator through `KIE_SIMULATOR_PORT`. `bench/` imports
these helpers too, so the benchmarks start their processes the way the tests do.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


def wait_for_line(log: Path, text: str, timeout: float = 60) -> None:
    """Waits until a process's log says `text` (a worker's "running.", a simulator's address)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise SystemExit(f"{log.name} never said {text!r}")


def spawn(name: str, argv: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    """Starts a process writing to `logs/<name>.log`, in its own process group (so that
    killing it, with `os.killpg`, takes its children too, as a machine going down would)."""
    with (logs / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )


def gunicorn_argv(port: int, *, workers: int, threads: int, timeout: int = 30) -> list[str]:
    """The web server as the Docker image runs it, on loopback."""
    return [
        sys.executable, "-m", "gunicorn", "config.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
        "--timeout", str(timeout), "--no-control-socket",
    ]  # fmt: skip


def worker_database_url(*, via_port: int | None = None) -> str:
    """The URL of the database this test run created (a file for SQLite); `via_port` reaches
    PostgreSQL through a `TcpProxy` on that port instead."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = "127.0.0.1" if via_port else db.get("HOST") or "127.0.0.1"
    port = via_port or db.get("PORT") or 5432
    return f"postgres://{quote(db['USER'])}{password}@{host}:{port}/{db['NAME']}"


class WorkerProcess:
    """`manage.py worker` in its own process group, stopped (or killed) by the test."""

    def __init__(self, *, var_dir: Path, simulator_port: int, extra_env: dict[str, str]) -> None:
        var_dir.mkdir(parents=True, exist_ok=True)
        self.log = var_dir / f"worker-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "DJANGO_ENV": "test",
            "DATABASE_URL": worker_database_url(),
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
        with contextlib.suppress(ProcessLookupError):  # the whole cluster is gone already
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

    def wait_until_running(self, timeout: float = 60) -> float:
        """Waits until the cluster says it runs; returns when (time.monotonic())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "running." in self.output():
                return time.monotonic()
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"the worker did not start:\n{self.output()[-3000:]}")


class TcpProxy:
    """A TCP forwarder on an ephemeral port. With one target, a worker reaches the database
    through it and `cut()` makes the database unreachable for that worker alone (the test keeps
    its own). With several, it is a tiny round-robin load balancer: each new connection goes to
    the next target, and a target that refuses it is skipped (a dead web server drops out)."""

    def __init__(self, *targets: tuple[str, int]) -> None:
        self._targets = targets
        self._next = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._cut.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = self._connect()
            if upstream is None:
                client.close()
                continue
            self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        for _ in self._targets:
            target = self._targets[self._next % len(self._targets)]
            self._next += 1
            try:
                return socket.create_connection(target)
            except OSError:
                continue
        return None

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            # Each direction's thread closes the end it reads, so a balancer that forwards
            # thousands of connections does not run out of file descriptors.
            source.close()
            self._sockets.discard(source)

    def cut(self) -> None:
        """Drops every connection and refuses new ones."""
        self._cut.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        for end in list(self._sockets):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
                end.close()
