"""`make run`: the whole app in the foreground — web server and task worker (whose removal
processes clean uploaded files with Unmark's own remover), the Kie simulator when no Kie key is
set, and the SWC and Replicate simulators when asked for (`SWC_SIMULATOR=1`,
`REPLICATE_SIMULATOR=1`).

Each child runs in its own process group so that Ctrl-C reaches only this supervisor, which
then stops every child through its main process. (A SIGTERM delivered to django-q2's whole
process group makes its cluster hang; its main process must be asked to stop alone.)
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

STOP_TIMEOUT_SECONDS = 15


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.argv, env=env, start_new_session=True)  # noqa: S603

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None


class Command(BaseCommand):
    help = "Runs the web server, a task worker and the simulators for local use (make run)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--port", type=int, default=settings.PORT)

    def handle(self, *args: object, **options: object) -> None:
        if settings.PRODUCTION:
            raise CommandError("run_local is for local use; production runs gunicorn and worker.")
        port = int(options["port"])  # type: ignore[call-overload]
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        call_command("ensure_local_admin")

        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = [
            Child(
                "web",
                [
                    sys.executable, "-m", "gunicorn", "config.wsgi",
                    "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
                    "--access-logfile", "-", "--graceful-timeout", "5", "--no-control-socket",
                ],
            ),
            Child("worker", [*manage, "worker"]),
        ]  # fmt: skip
        # Simulators start first, so they listen before the worker sends them anything.
        if settings.SWC_SIMULATOR:
            # Two SWC servers, so uploads work offline and spread over a pool from the start.
            for swc_port in settings.SWC_SIMULATOR_PORTS:
                argv = [*manage, "swc_simulator", "--port", str(swc_port)]
                children.insert(0, Child(f"swc-simulator-{swc_port}", argv))
        if settings.KIE_SIMULATOR:
            children.insert(0, Child("kie-simulator", self._simulator_argv(manage)))
        if settings.REPLICATE_SIMULATOR:
            argv = [
                *manage,
                "replicate_simulator",
                "--port",
                str(settings.REPLICATE_SIMULATOR_PORT),
            ]
            children.insert(0, Child("replicate-simulator", argv))
        # Children read settings again: with --port, their default PUBLIC_BASE_URL (where the
        # simulator calls back) must name the port the web server really listens on.
        env = {**os.environ, "PORT": str(port), **self._metrics_env()}
        for child in children:
            child.start(env)

        simulators = []
        if "local" in settings.FILE_PROVIDERS and settings.REMOVER_PROCESSES:
            count = settings.REMOVER_PROCESSES
            simulators.append(
                f"Uploaded files are cleaned by Unmark's own remover ({count} at a time)"
            )
        if settings.KIE_SIMULATOR:
            simulators.append(f"Kie simulator on {settings.KIE_BASE_URL}/")
        if settings.SWC_SIMULATOR:
            urls = ", ".join(f"{server['url']}/" for server in settings.SWC_SERVERS)
            simulators.append(f"SWC simulators on {urls}")
        if settings.REPLICATE_SIMULATOR:
            simulators.append(f"Replicate simulator on {settings.REPLICATE_BASE_URL}/")
        self.stdout.write(
            self.style.SUCCESS(
                f"\nUnmark is running on http://127.0.0.1:{port}/  (Ctrl-C stops it)\n"
                + "".join(f"{line}\n" for line in simulators)
            )
        )
        self._supervise(children)

    def _metrics_env(self) -> dict[str, str]:
        """The web server's and the worker's metrics, added up on /metrics: both write to one
        folder, emptied first (what a stopped run wrote is not this run's)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return {}
        folder = settings.VAR_DIR / "prometheus"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return {"PROMETHEUS_MULTIPROC_DIR": str(folder)}

    def _simulator_argv(self, manage: list[str]) -> list[str]:
        argv = [*manage, "kie_simulator", "--port", str(settings.KIE_SIMULATOR_PORT)]
        if settings.KIE_WEBHOOK_HMAC_KEY:
            argv += ["--hmac-key", settings.KIE_WEBHOOK_HMAC_KEY]
        return argv

    def _supervise(self, children: list[Child]) -> None:
        stopping = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        failed = None
        while not stopping:
            failed = next((child for child in children if child.exited()), None)
            if failed:
                self.stderr.write(f"The {failed.name} process stopped unexpectedly; stopping all.")
                break
            time.sleep(0.3)
        self._stop(children)
        if failed:
            raise CommandError(f"{failed.name} exited with status {failed.process.returncode}")  # type: ignore[union-attr]
        self.stdout.write("Stopped.")

    def _stop(self, children: list[Child]) -> None:
        for child in children:
            if child.process and not child.exited():
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"The {child.name} process did not stop in time; killing it.")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
