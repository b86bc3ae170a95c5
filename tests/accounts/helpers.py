"""Helpers for the team tests."""

import re

from apps.accounts.models import Invitation, Membership, OwnershipOffer, Team, TeamEvent
from apps.billing.models import LedgerEntry, TopUp, Wallet
from apps.jobs.models import Job, JobEvent


def team_state(team: Team) -> dict[str, object]:
    """Everything about a team that a team action can change, to prove a refusal changed nothing."""
    team.refresh_from_db()
    return {
        "team": (team.name, team.archived_at),
        "memberships": list(
            Membership.objects.filter(team=team)
            .order_by("pk")
            .values_list("user__email", "role", "monthly_credit_limit")
        ),
        "invitations": list(
            Invitation.objects.filter(team=team)
            .order_by("pk")
            .values_list("email", "role", "token_hash", "expires_at", "accepted_at", "revoked_at")
        ),
        "offer": list(
            OwnershipOffer.objects.filter(team=team).values_list("offered_to__user__email")
        ),
        "events": TeamEvent.objects.filter(team=team).count(),
    }


def all_team_data() -> dict[str, object]:
    """Every row, in every team, that a job or billing page could add or change: proves that a
    refused request changed nothing anywhere."""
    return {
        "jobs": list(
            Job.objects.order_by("pk").values_list("pk", "team", "created_by", "state", "retry_of")
        ),
        "job events": JobEvent.objects.count(),
        "ledger": list(LedgerEntry.objects.order_by("pk").values_list("pk", "team", "kind")),
        "wallets": list(
            Wallet.objects.order_by("pk").values_list("team", "balance", "held", "frozen_at")
        ),
        "top-ups": list(TopUp.objects.order_by("pk").values_list("pk", "team", "status")),
        "memberships": list(Membership.objects.order_by("pk").values_list("team", "user", "role")),
        "team events": TeamEvent.objects.count(),
    }


def membership(team: Team, user) -> Membership:
    return Membership.objects.get(team=team, user=user)


def first_match(pattern: str, text: object) -> str:
    """Group 1 of the first match of `pattern` in `text`; fails the test when there is none."""
    match = re.search(pattern, str(text))
    assert match, f"{pattern!r} not found"
    return match.group(1)
