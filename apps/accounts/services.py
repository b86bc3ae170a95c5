from django.db import transaction

from apps.accounts.models import Membership, Role, Team, User


def create_team(*, name: str, owner: User, personal: bool = False) -> Team:
    with transaction.atomic():
        team = Team.objects.create(name=name, is_personal=personal)
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    return team


def onboard_new_user(*, user: User) -> Team:
    """Gives a newly signed-up person their personal team, which they own."""
    existing = Team.objects.filter(is_personal=True, memberships__user=user).first()
    if existing:
        return existing
    return create_team(name=personal_team_name(user), owner=user, personal=True)


def personal_team_name(user: User) -> str:
    return f"{user.email.split('@', 1)[0][:60]}'s team"
