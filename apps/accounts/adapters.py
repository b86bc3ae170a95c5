from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.invitations import RETURN_TO_INVITATION_SESSION_KEY
from apps.accounts.models import User
from apps.accounts.services import ensure_personal_team


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request: HttpRequest, user: User, form: Any, commit: bool = True) -> User:
        # The user and their personal team are created together or not at all.
        with transaction.atomic():
            saved: User = super().save_user(request, user, form, commit=commit)
            if commit:
                ensure_personal_team(user=saved)
        return saved

    def get_email_verification_redirect_url(self, email_address: EmailAddress) -> str:
        # Someone who opened an invitation before confirming their address goes back to it.
        invitation_path = self.request.session.pop(RETURN_TO_INVITATION_SESSION_KEY, None)
        if invitation_path and self.request.user.is_authenticated:
            return str(invitation_path)
        return str(super().get_email_verification_redirect_url(email_address))
