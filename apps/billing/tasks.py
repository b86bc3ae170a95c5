"""Task entry points for billing: the low-balance check, run after anything that may take a
team's available credits below its threshold (or back above it)."""

from apps import taskqueue
from apps.accounts.models import Team
from apps.billing import low_balance


@taskqueue.needs_database
def check_low_balance(team_id: int) -> None:
    if team := Team.objects.filter(pk=team_id).first():
        low_balance.check(team=team)
