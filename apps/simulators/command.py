"""What the simulators' management commands share: refusing production, `--host`/`--port`,
and running the simulator in the foreground until Ctrl-C, or SIGTERM (which `make run` sends
its children), then stopping it cleanly."""

import signal
from argparse import ArgumentParser
from types import FrameType
from typing import Any, Protocol

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Running(Protocol):
    url: str

    def serve_forever(self) -> None: ...

    def stop(self) -> None: ...


class SimulatorCommand(BaseCommand):
    simulator_name: str  # "Kie simulator": how the lines it prints name it
    listing: str  # where it lists what it has seen, formatted with its `url`

    def default_port(self) -> int:
        raise NotImplementedError

    def build(self, host: str, port: int, options: dict[str, Any]) -> Running:
        """The simulator the options describe, bound to host:port and not yet serving.
        Raises ValueError for options it cannot take."""
        raise NotImplementedError

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=self.default_port())
        parser.add_argument("--host", default="127.0.0.1", help="a loopback address")

    def handle(self, *args: object, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                f"The {self.simulator_name} is for local use and tests, not production."
            )
        try:
            simulator = self.build(str(options["host"]), int(options["port"]), options)
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc

        signal.signal(signal.SIGTERM, _interrupt)
        self.stdout.write(
            f"{self.simulator_name} on {simulator.url}/  ({self.listing.format(url=simulator.url)})"
        )
        self.stdout.flush()
        try:
            simulator.serve_forever()
        except KeyboardInterrupt:
            simulator.stop()  # the Kie simulator cancels the callbacks it has not sent
            self.stdout.write(f"{self.simulator_name} stopped.")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Leave the serving loop like Ctrl-C does.
    raise KeyboardInterrupt
