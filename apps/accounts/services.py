from django.conf import settings
from django.db import transaction

from apps.accounts.models import Membership, Role, Team, User
from apps.billing import ledger


def create_team(*, name: str, owner: User, personal: bool = False) -> Team:
    with transaction.atomic():
        team = Team.objects.create(name=name, is_personal=personal)
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        ledger.open_wallet(team)
    return team


def onboard_new_user(*, user: User) -> Team:
    """Gives a newly signed-up person their personal team, which they own, and welcome credits."""
    existing = Team.objects.filter(is_personal=True, memberships__user=user).first()
    if existing:
        return existing
    with transaction.atomic():
        team = create_team(name=personal_team_name(user), owner=user, personal=True)
        if settings.SIGNUP_CREDITS:
            # Keyed by the person: welcome credits once, however often this runs.
            ledger.grant(
                team=team, credits=settings.SIGNUP_CREDITS, key=f"signup:{user.pk}",
                memo="Welcome credits",
            )  # fmt: skip
    return team


def personal_team_name(user: User) -> str:
    return f"{user.email.split('@', 1)[0][:60]}'s team"
