"""`manage.py create_api_key --team <team> --name <name> [--read-only] [--as <email>]`: makes
an API key and prints it, once. The key acts as `--as` (an owner or admin of the team), by
default the team's longest-standing owner."""

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import MANAGER_ROLES, Membership, Role, Team
from apps.api import keys


class Command(BaseCommand):
    help = "Makes an API key for a team and prints it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", required=True, help="The team's id (as in its URL) or name.")
        parser.add_argument("--name", required=True, help="What the key is for.")
        parser.add_argument("--read-only", action="store_true", help="A key that only reads.")
        parser.add_argument(
            "--as",
            dest="maker",
            default="",
            help="Email of the owner or admin the key acts as (default: the oldest owner).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        team = _find_team(options["team"])
        name = options["name"].strip()
        if not name or len(name) > 80:
            raise CommandError("--name must be 1 to 80 characters.")
        managers = Membership.objects.filter(team=team, role__in=MANAGER_ROLES).select_related(
            "team", "user"
        )
        if options["maker"]:
            membership = managers.filter(user__email__iexact=options["maker"]).first()
            if membership is None:
                raise CommandError(f"{options['maker']} is not an owner or admin of {team.name}.")
        else:
            membership = managers.filter(role=Role.OWNER).order_by("created_at", "id").first()
            if membership is None:
                raise CommandError(f"{team.name} has no owner to act as; use --as.")
        key, raw_key = keys.create_key(
            membership=membership, name=name, read_only=options["read_only"]
        )
        self.stderr.write(
            f"API key “{key.name}” for {team.name} ({key.scope}), acting as "
            f"{membership.user.email}. Shown only now:"
        )
        self.stdout.write(raw_key)


def _find_team(given: str) -> Team:
    teams = Team.objects.active()
    try:
        return teams.get(public_id=uuid.UUID(given))
    except (ValueError, Team.DoesNotExist):
        pass
    found = list(teams.filter(name__iexact=given)[:2])
    if len(found) == 1:
        return found[0]
    if found:
        raise CommandError(f"Several teams are called {given!r}: give the team's id.")
    raise CommandError(f"No team {given!r}.")
