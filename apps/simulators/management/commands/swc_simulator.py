"""`manage.py swc_simulator`: a simulated SoraWatermarkCleaner server in the foreground.

`make run` starts two when `SWC_SERVERS` is unset, so uploads work without a GPU.
"""

from argparse import ArgumentParser
from typing import Any

from django.conf import settings

from apps.simulators.command import Running, SimulatorCommand
from apps.simulators.swc import SwcSimConfig, SwcSimulator


class Command(SimulatorCommand):
    help = "Runs a simulated SoraWatermarkCleaner server (SWC's API and quirks) on loopback."
    simulator_name = "SWC simulator"
    listing = "tasks: {url}/__sim__/tasks"

    def default_port(self) -> int:
        return settings.SWC_SIMULATOR_PORTS[0]

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = SwcSimConfig()
        super().add_arguments(parser)
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

    def build(self, host: str, port: int, options: dict[str, Any]) -> Running:
        config = SwcSimConfig(
            seconds_per_video=float(options["seconds_per_video"]),
            failure_rate=float(options["failure_rate"]),
            stall_rate=float(options["stall_rate"]),
            legacy_routes=bool(options["legacy_routes"]),
        )
        return SwcSimulator(config, host=host, port=port)
