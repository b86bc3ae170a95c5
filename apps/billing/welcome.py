"""A new person's start: their personal team (accounts) and its welcome credits (billing).

Accounts is the ground floor and knows nothing of money, so the sign-up adapter that
allauth uses (`ACCOUNT_ADAPTER`) lives here, on top of the accounts one.
"""

from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.adapters import AccountAdapter
from apps.accounts.models import Team, User
from apps.accounts.services import ensure_personal_team
from apps.billing import ledger


def onboard_new_user(*, user: User) -> Team:
    """Gives a newly signed-up person their personal team, which they own, and welcome credits
    (once, however often this runs)."""
    with transaction.atomic():
        team = ensure_personal_team(user=user)
        if settings.SIGNUP_CREDITS:
            ledger.grant(
                team=team, credits=settings.SIGNUP_CREDITS, key=f"signup:{user.pk}",
                memo="Welcome credits",
            )  # fmt: skip
    return team


class SignupAdapter(AccountAdapter):
    def save_user(self, request: HttpRequest, user: User, form: Any, commit: bool = True) -> User:
        # The person, their personal team and its credits are created together or not at all.
        with transaction.atomic():
            saved = super().save_user(request, user, form, commit=commit)
            if commit:
                onboard_new_user(user=saved)
        return saved
