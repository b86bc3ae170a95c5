"""Monthly credit limits per member, where jobs and money meet: what each person has used this
month, and the check the job submission makes before it holds credits.

A month is the calendar month in UTC. Jobs that failed or were canceled cost nothing (their
hold is released), so they do not count against anyone's limit. The member pages (accounts)
show these figures through `apps.accounts.usage`, which `JobsConfig.ready` points here.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.utils.translation import ngettext

from apps import plural
from apps.accounts.models import Membership, Team
from apps.accounts.usage import start_of_month, start_of_next_month
from apps.jobs.models import Job, JobState
from apps.refusals import Refused

UNCHARGED_STATES = (JobState.FAILED, JobState.CANCELED)


def _charged_jobs_this_month(team_id: int) -> QuerySet[Job]:
    return Job.objects.filter(team_id=team_id, created_at__gte=start_of_month()).exclude(
        state__in=UNCHARGED_STATES
    )


def credits_used_this_month_by_member(*, team: Team) -> dict[int, int]:
    """Credits each person has spent in `team` this month, keyed by user id, in one query.

    People who used nothing are absent from the result.
    """
    rows = (
        _charged_jobs_this_month(team.pk)
        .filter(created_by__isnull=False)
        .order_by()
        .values("created_by")
        .annotate(total=Sum("credits"))
        .values_list("created_by", "total")
    )
    return dict(rows)


def videos_in_flight(*, team_ids: list[int]) -> bool:
    """Whether any of these teams has a video still being cleaned (for accounts' deletions)."""
    return Job.objects.filter(team_id__in=team_ids).in_flight().exists()


def credits_used_this_month(*, membership: Membership) -> int:
    used = (
        _charged_jobs_this_month(membership.team_id)
        .filter(created_by_id=membership.user_id)
        .aggregate(total=Sum("credits"))["total"]
    )
    return used or 0


class MonthlyLimitReached(Refused):
    """Submitting `requested` more credits would take a member past their monthly limit."""

    code, status, title = "monthly-limit-reached", 403, "Monthly limit reached"

    def __init__(self, *, limit: int, used: int, requested: int) -> None:
        self.limit = limit
        self.used = used
        self.requested = requested
        self.remaining = max(limit - used, 0)
        self.resets_at = start_of_next_month()
        super().__init__(self._words())

    def _words(self) -> str:
        # People set and read limits in videos; credits, the money, go in brackets.
        per_video = settings.CREDITS_PER_VIDEO
        if self.remaining == 0:
            limit = plural.videos(self.limit // per_video)
            return (
                f"You have used all of your monthly limit of {limit}"
                f" ({plural.credits(self.limit)}). It resets on {self.resets_at.day}"
                f" {self.resets_at:%B}."
            )
        videos = self.requested // per_video
        need = ngettext(
            "Your video needs %(credits)s", "Your %(videos)s need %(credits)s", videos
        ) % {"videos": plural.videos(videos), "credits": plural.credits(self.requested)}
        left = ngettext(
            "you can use %(remaining)s more credit (%(videos)s) this month",
            "you can use %(remaining)s more credits (%(videos)s) this month",
            self.remaining,
        ) % {
            "remaining": f"{self.remaining:,}",
            "videos": plural.videos(self.remaining // per_video),
        }
        return f"{need}; {left}."


def check_monthly_limit(*, membership: Membership, credits: int) -> None:
    """Raises `MonthlyLimitReached` unless the member may spend `credits` more this month.

    Call it inside the submission's transaction, right before holding the credits and creating
    the jobs: it locks the membership row until that transaction ends, so two submissions by
    the same person queue up here and the second one sees the first one's jobs.
    """
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError(
            "check_monthly_limit() must run inside the transaction that creates the jobs."
        )
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.monthly_credit_limit is None:
        return
    used = credits_used_this_month(membership=locked)
    if used + credits > locked.monthly_credit_limit:
        raise MonthlyLimitReached(limit=locked.monthly_credit_limit, used=used, requested=credits)
