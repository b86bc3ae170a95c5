"""`manage.py worker`: a task worker cluster (django-q2), as production and `make run` run it."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps import taskqueue, telemetry


class Command(BaseCommand):
    help = (
        "Runs a worker cluster: brings schedules up to date, starts a poller at once, and "
        "stops (exit 1) if the database cannot be reached. With WORKER_METRICS_PORT set, it "
        "serves its processes' metrics there for Prometheus."
    )

    def handle(self, *args: object, **options: object) -> None:
        if settings.WORKER_METRICS_PORT is not None:
            self._serve_metrics(settings.WORKER_METRICS_ADDRESS, settings.WORKER_METRICS_PORT)
        try:
            status = taskqueue.run_worker()
        except taskqueue.DatabaseUnreachable as exc:
            raise CommandError(str(exc)) from exc
        if status:
            raise CommandError("The worker stopped: the database is unreachable.")

    def _serve_metrics(self, address: str, port: int) -> None:
        try:
            server, _ = telemetry.serve_worker_metrics(address=address, port=port)
        except telemetry.MetricsFolderMissing as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:  # the port is taken, the address is not this machine's
            message = f"Worker metrics cannot be served on {address}:{port}: {exc}"
            raise CommandError(message) from exc
        self.stdout.write(f"Worker metrics on http://{address}:{server.server_port}/metrics")
        self.stdout.flush()
