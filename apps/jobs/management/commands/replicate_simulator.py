"""`manage.py replicate_simulator`: the Replicate simulator in the foreground (started by
`make run`)."""

import signal
from argparse import ArgumentParser
from types import FrameType

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.jobs.simulators.replicate import ReplicateSimConfig, ReplicateSimulator


class Command(BaseCommand):
    help = "Runs the Replicate simulator: Replicate's prediction API on loopback, no account."

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = ReplicateSimConfig(api_token=settings.REPLICATE_SIMULATOR_API_TOKEN)
        parser.add_argument("--port", type=int, default=settings.REPLICATE_SIMULATOR_PORT)
        parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
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
        parser.add_argument("--failure-rate", type=float, default=defaults.failure_rate)
        parser.add_argument(
            "--rate-limit", type=int, default=defaults.rate_limit, help="creates per minute"
        )

    def handle(self, *args: object, **options: object) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "The Replicate simulator is for local use and tests, not production."
            )
        try:
            config = ReplicateSimConfig(
                api_token=str(options["api_token"]),
                webhook_secret=str(options["webhook_secret"]),
                cold_start_seconds=float(options["cold_start"]),  # type: ignore[arg-type]
                processing_seconds=float(options["processing"]),  # type: ignore[arg-type]
                failure_rate=float(options["failure_rate"]),  # type: ignore[arg-type]
                rate_limit=int(options["rate_limit"]),  # type: ignore[call-overload]
            )
            simulator = ReplicateSimulator(
                config,
                host=str(options["host"]),
                port=int(options["port"]),  # type: ignore[call-overload]
            )
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc

        signal.signal(signal.SIGTERM, _interrupt)
        self.stdout.write(
            f"Replicate simulator on {simulator.url}/  "
            f"(predictions it has seen: {simulator.url}/__sim__/predictions)"
        )
        self.stdout.flush()
        try:
            simulator.serve_forever()
        except KeyboardInterrupt:
            simulator.stop()
            self.stdout.write("Replicate simulator stopped.")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # `make run` stops its children with SIGTERM; leave the serving loop like Ctrl-C does.
    raise KeyboardInterrupt
