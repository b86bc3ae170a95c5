"""The low-balance email: owners and admins hear once each time the team's available credits
fall below the threshold they chose, and again only after credits have come back above it.

`Team.low_balance_alerted` is the switch, flipped by conditional UPDATEs so two workers
checking at once send one email (and one `credits.low` webhook, written with the flip).
"""

import logging

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from apps import taskqueue
from apps.accounts.emails import send_template, site_url
from apps.accounts.models import MANAGER_ROLES, Team
from apps.billing import ledger
from apps.webhooks.models import EventType
from apps.webhooks.services import emit

logger = logging.getLogger(__name__)


def check(*, team: Team) -> bool:
    """Sends the email if credits just fell below the threshold. True if it sent one."""
    threshold = Team.objects.filter(pk=team.pk).values_list("low_balance_threshold", flat=True)
    limit = threshold.first()
    if limit is None or team.is_archived:
        return False
    available = ledger.available_credits(team)
    if available >= limit:
        rearm(team=team)
        return False
    with transaction.atomic():
        if not Team.objects.filter(pk=team.pk, low_balance_alerted=False).update(
            low_balance_alerted=True
        ):
            return False  # already told since credits last fell
        # The team's webhooks hear of it with the switch flipped: once per fall, like the email.
        emit(
            team_id=team.pk,
            event_type=EventType.CREDITS_LOW,
            payload={
                "team": {"id": str(team.public_id), "name": team.name},
                # `available` and `threshold` are in credits, as first published; the team set
                # the threshold in videos, so each unit is named too (fields are only added).
                "credits": {
                    "available": available,
                    "threshold": limit,
                    "threshold_credits": limit,
                    "threshold_videos": limit // settings.CREDITS_PER_VIDEO,
                    "videos_left": max(available, 0) // settings.CREDITS_PER_VIDEO,
                    "credits_per_video": settings.CREDITS_PER_VIDEO,
                },
                "url": site_url() + reverse("billing:overview", args=[team.public_id]),
            },
        )
    recipients = list(
        team.memberships.filter(role__in=MANAGER_ROLES).values_list("user__email", flat=True)
    )
    base = site_url()
    send_template(
        "billing/email/low_balance",
        {
            "team": team,
            "available": max(available, 0),
            "videos": max(available, 0) // settings.CREDITS_PER_VIDEO,
            "threshold": limit,
            "billing_link": base + reverse("billing:overview", args=[team.public_id]),
            "settings_link": base + reverse("accounts:team_settings", args=[team.public_id]),
        },
        recipients,
    )
    logger.info("low balance email sent", extra={"team": team.pk, "available": available})
    return True


def check_soon(team_id: int) -> None:
    """Checks the team's balance in a worker once the current transaction commits."""
    taskqueue.enqueue("apps.billing.tasks.check_low_balance", team_id)


def rearm(*, team: Team) -> None:
    """Credits are back at or above the threshold: the next fall below is told again."""
    Team.objects.filter(
        pk=team.pk, low_balance_alerted=True, low_balance_threshold__isnull=False
    ).update(low_balance_alerted=False)
