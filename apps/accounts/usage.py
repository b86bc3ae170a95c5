"""What each member spent this month, for the member pages.

Accounts is the ground floor and knows nothing of jobs or money. The layer that does
(`apps.jobs.limits`) tells it how to count when the app starts (`JobsConfig.ready`).
A month is the calendar month in UTC.
"""

from datetime import UTC, datetime
from typing import Protocol

from django.utils import timezone

from apps.accounts.models import Team


class MonthlyUsage(Protocol):
    def __call__(self, *, team: Team) -> dict[int, int]: ...


def start_of_month(now: datetime | None = None) -> datetime:
    moment = (now or timezone.now()).astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def start_of_next_month(now: datetime | None = None) -> datetime:
    start = start_of_month(now)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def _not_counted(*, team: Team) -> dict[int, int]:
    raise RuntimeError("No monthly usage source: apps.jobs must be installed.")


_monthly_usage: MonthlyUsage = _not_counted


def count_monthly_usage_with(source: MonthlyUsage) -> None:
    global _monthly_usage
    _monthly_usage = source


def credits_used_this_month_by_member(*, team: Team) -> dict[int, int]:
    """Credits each person has spent in `team` this month, keyed by user id (absent: none)."""
    return _monthly_usage(team=team)
