"""`manage.py replicate_simulator`: the Replicate simulator in the foreground (started by
`make run`)."""

from argparse import ArgumentParser
from typing import Any

from django.conf import settings

from apps.simulators.command import Running, SimulatorCommand
from apps.simulators.replicate import ReplicateSimConfig, ReplicateSimulator


class Command(SimulatorCommand):
    help = "Runs the Replicate simulator: Replicate's prediction API on loopback, no account."
    simulator_name = "Replicate simulator"
    listing = "predictions it has seen: {url}/__sim__/predictions"

    def default_port(self) -> int:
        return settings.REPLICATE_SIMULATOR_PORT

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = ReplicateSimConfig(api_token=settings.REPLICATE_SIMULATOR_API_TOKEN)
        super().add_arguments(parser)
        parser.add_argument("--api-token", default=defaults.api_token, help="the token to accept")
        parser.add_argument(
            "--webhook-secret",
            default=settings.REPLICATE_WEBHOOK_SECRET,
            help="sign webhooks with this whsec_ secret (made up when empty)",
        )
        parser.add_argument(
            "--cold-start",
            type=float,
            default=defaults.cold_start_seconds,
            help="seconds each prediction sits in `starting`",
        )
        parser.add_argument(
            "--processing",
            type=float,
            default=defaults.processing_seconds,
            help="least seconds each prediction spends `processing`",
        )
        parser.add_argument(
            "--instances",
            type=int,
            default=defaults.instances,
            help="predictions processed at once; more wait in starting",
        )
        parser.add_argument("--failure-rate", type=float, default=defaults.failure_rate)
        parser.add_argument(
            "--rate-limit", type=int, default=defaults.rate_limit, help="creates per minute"
        )

    def build(self, host: str, port: int, options: dict[str, Any]) -> Running:
        config = ReplicateSimConfig(
            api_token=str(options["api_token"]),
            webhook_secret=str(options["webhook_secret"]),
            cold_start_seconds=float(options["cold_start"]),
            processing_seconds=float(options["processing"]),
            instances=int(options["instances"]),
            failure_rate=float(options["failure_rate"]),
            rate_limit=int(options["rate_limit"]),
        )
        return ReplicateSimulator(config, host=host, port=port)
