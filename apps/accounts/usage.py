"""What each member spent this month, for the member pages, and what a member with a monthly
limit may still spend (the dashboard and the credits page show it); whether teams still have
videos being cleaned (deleting a team or an account waits for them).

Accounts is the ground floor and knows nothing of jobs or money. The layer that does
(`apps.jobs`) tells it how to count when the app starts (`JobsConfig.ready`).
A month is the calendar month in UTC.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from django.conf import settings
from django.utils import timezone

from apps import plural
from apps.accounts.models import Membership, Team


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


class VideosInFlight(Protocol):
    def __call__(self, *, team_ids: list[int]) -> bool: ...


def _not_known(*, team_ids: list[int]) -> bool:
    raise RuntimeError("No source for videos in flight: apps.jobs must be installed.")


_videos_in_flight: VideosInFlight = _not_known


def count_videos_in_flight_with(source: VideosInFlight) -> None:
    global _videos_in_flight
    _videos_in_flight = source


def videos_in_flight(*, team_ids: list[int]) -> bool:
    """Whether any of these teams has a video still being cleaned."""
    return bool(team_ids) and _videos_in_flight(team_ids=team_ids)


def credits_used_this_month_by_member(*, team: Team) -> dict[int, int]:
    """Credits each person has spent in `team` this month, keyed by user id (absent: none)."""
    return _monthly_usage(team=team)


@dataclass(frozen=True)
class MonthUsage:
    """What a member used this month, as people read it: in videos, against their limit."""

    credits: int
    limit: int | None

    @property
    def videos(self) -> int:
        return self.credits // settings.CREDITS_PER_VIDEO

    @property
    def words(self) -> str:
        """ "3 videos", or "1 of 2 videos" for a member with a monthly limit."""
        if self.limit is None:
            return plural.videos(self.videos)
        return f"{self.videos:,} of {plural.videos(self.limit // settings.CREDITS_PER_VIDEO)}"


@dataclass(frozen=True)
class LimitLeft:
    """What a member with a monthly limit may still spend this month."""

    limit: int
    used: int
    resets_at: datetime

    @property
    def credits(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def videos(self) -> int:
        return self.credits // settings.CREDITS_PER_VIDEO

    @property
    def limit_videos(self) -> int:
        return self.limit // settings.CREDITS_PER_VIDEO


def limit_left(*, membership: Membership) -> LimitLeft | None:
    """None for a member without a monthly limit."""
    if membership.monthly_credit_limit is None:
        return None
    used = credits_used_this_month_by_member(team=membership.team).get(membership.user_id, 0)
    return LimitLeft(
        limit=membership.monthly_credit_limit, used=used, resets_at=start_of_next_month()
    )
