"""`manage.py rollup_ops`: rolls up the operations page's closed days now (the workers do it
every minute); the first run after an upgrade rolls up the whole history."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.ops import rollups


class Command(BaseCommand):
    help = "Rolls up the operations page's closed days that are not yet, or changed since."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rebuild", action="store_true", help="roll up every day again, changed or not"
        )

    def handle(self, *args: Any, rebuild: bool = False, **options: Any) -> None:
        days = rollups.refresh(rebuild=rebuild)
        if days:
            self.stdout.write(f"Rolled up {len(days)} days, {days[0]} to {days[-1]}.")
        else:
            self.stdout.write("Every closed day was rolled up already.")
