"""`manage.py swc_simulator`: a simulated SoraWatermarkCleaner server in the foreground.

`make run` starts two when `SWC_SERVERS` is unset, so uploads work without a GPU.
"""

import signal
from argparse import ArgumentParser
from types import FrameType

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.jobs.simulators.swc import SwcSimConfig, SwcSimulator


class Command(BaseCommand):
    help = "Runs a simulated SoraWatermarkCleaner server (SWC's API and quirks) on loopback."

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = SwcSimConfig()
        parser.add_argument("--port", type=int, default=settings.SWC_SIMULATOR_PORTS[0])
        parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
        parser.add_argument(
            "--seconds-per-video",
            type=float,
            default=defaults.seconds_per_video,
            help="how long one run takes, start to FINISHED",
        )
        parser.add_argument(
            "--failure-rate",
            type=float,
            default=defaults.failure_rate,
            help="share ending in ERROR",
        )
        parser.add_argument(
            "--stall-rate",
            type=float,
            default=defaults.stall_rate,
            help="share of runs that freeze (and wedge the server) until a restart",
        )
        parser.add_argument(
            "--legacy-routes",
            action="store_true",
            help="serve the routes at the root without get_queue_status, as older releases do",
        )

    def handle(self, *args: object, **options: object) -> None:
        if settings.PRODUCTION:
            raise CommandError("The SWC simulator is for local use and tests, not production.")
        try:
            config = SwcSimConfig(
                seconds_per_video=float(options["seconds_per_video"]),  # type: ignore[arg-type]
                failure_rate=float(options["failure_rate"]),  # type: ignore[arg-type]
                stall_rate=float(options["stall_rate"]),  # type: ignore[arg-type]
                legacy_routes=bool(options["legacy_routes"]),
            )
            simulator = SwcSimulator(
                config,
                host=str(options["host"]),
                port=int(options["port"]),  # type: ignore[call-overload]
            )
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc

        signal.signal(signal.SIGTERM, _interrupt)
        self.stdout.write(
            f"SWC simulator on {simulator.url}/  (tasks: {simulator.url}/__sim__/tasks)"
        )
        self.stdout.flush()
        try:
            simulator.serve_forever()
        except KeyboardInterrupt:
            simulator.stop()
            self.stdout.write("SWC simulator stopped.")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # `make run` stops its children with SIGTERM; leave the serving loop like Ctrl-C does.
    raise KeyboardInterrupt
