from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress, EmailConfirmation
from allauth.core import context as allauth_context
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from apps.accounts import emails
from apps.accounts.invitations import (
    RETURN_TO_INVITATION_SESSION_KEY,
    invitation_opened_in,
)
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

    def is_email_verified(self, request: HttpRequest, email: str) -> bool:
        # The invitation's link reached this browser only through the invited mailbox: signing
        # up with that address from it proves the mailbox as well as a confirmation link would.
        invitation = invitation_opened_in(request)
        if invitation is not None and invitation.email == email.strip().lower():
            return True
        return bool(super().is_email_verified(request, email))

    def get_email_verification_redirect_url(self, email_address: EmailAddress) -> str:
        # Someone who opened an invitation before confirming their address goes back to it.
        invitation_path = self.request.session.pop(RETURN_TO_INVITATION_SESSION_KEY, None)
        if invitation_path and self.request.user.is_authenticated:
            return str(invitation_path)
        return str(super().get_email_verification_redirect_url(email_address))

    def get_email_confirmation_url(
        self, request: HttpRequest, emailconfirmation: EmailConfirmation
    ) -> str:
        # The configured address, like every link we email: the request may have come in on an
        # internal name (127.0.0.1:8400 behind the proxy).
        return emails.site_url() + reverse("account_confirm_email", args=[emailconfirmation.key])

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        # allauth names the site after the request's host ("Hello from 127.0.0.1:8101"):
        # its templates (overridden under templates/account/email/) use the brand instead.
        super().send_mail(template_prefix, email, {**context, **emails.brand()})

    def render_mail(
        self,
        template_prefix: str,
        email: str | list[str],
        context: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> EmailMessage:
        # Same subject and text as allauth's, with the HTML twin every email of ours has.
        plain = super().render_mail(template_prefix, email, context, headers)
        subject = str(plain.subject).removeprefix(self.format_email_subject(""))
        return emails.compose(
            subject=subject, text=str(plain.body), to=list(plain.to), headers=headers
        )


class MFAAdapter(DefaultMFAAdapter):
    def get_public_key_credential_rp_entity(self) -> dict[str, str]:
        # Keys are bound to this id: production names its domain in settings rather than
        # trusting whatever Host header a request arrives with.
        host = allauth_context.request.get_host().partition(":")[0]
        return {"id": settings.WEBAUTHN_RP_ID or host, "name": settings.WEBAUTHN_RP_NAME}
