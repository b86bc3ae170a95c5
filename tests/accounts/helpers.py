"""Helpers for the team tests."""

import re

from apps.accounts.models import Invitation, Membership, OwnershipOffer, Team, TeamEvent


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


def membership(team: Team, user) -> Membership:
    return Membership.objects.get(team=team, user=user)


def first_match(pattern: str, text: object) -> str:
    """Group 1 of the first match of `pattern` in `text`; fails the test when there is none."""
    match = re.search(pattern, str(text))
    assert match, f"{pattern!r} not found"
    return match.group(1)
