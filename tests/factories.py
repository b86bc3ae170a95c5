"""Test data made the way the app makes it (people get their personal team on sign-up)."""

import factory

from apps.accounts.models import Membership, Role, Team, User
from apps.accounts.services import create_team, onboard_new_user

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def personal_team(user: User, create: bool, extracted: object, **kwargs: object) -> None:
        if create and extracted is not False:
            onboard_new_user(user=user)


def make_team(name: str, owner: User) -> Team:
    return create_team(name=name, owner=owner)


def add_member(team: Team, user: User, role: Role = Role.MEMBER) -> Membership:
    return Membership.objects.create(team=team, user=user, role=role)
