"""The emails teams send: invitation, invitation accepted, ownership offered (plain text).

Callers send them after their transaction commits, so nobody hears of a change that was
rolled back.
"""

from django.conf import settings
from django.core.mail import send_mail
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from apps.accounts.models import Invitation, OwnershipOffer, User


def site_url(request: HttpRequest) -> str:
    """The address links in emails start with: the public one when configured (the request may
    have come through an internal host name), else the one this request came in on."""
    return settings.PUBLIC_BASE_URL or request.build_absolute_uri("/").rstrip("/")


def _send(template: str, context: dict[str, object], to: str) -> None:
    subject_line = render_to_string(f"accounts/email/{template}_subject.txt", context)
    body = render_to_string(f"accounts/email/{template}_message.txt", context)
    # A subject is one line, whatever the template's trailing newline.
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(subject_line.split())
    send_mail(subject, body, None, [to])


def send_invitation(*, invitation: Invitation, token: str, site_url: str) -> None:
    link = site_url + reverse("accounts:invitation", args=[token])
    _send("invitation", {"invitation": invitation, "link": link}, invitation.email)


def send_invitation_accepted(*, invitation: Invitation, member: User, site_url: str) -> None:
    if invitation.invited_by is None:
        return
    link = site_url + reverse("accounts:members", args=[invitation.team.public_id])
    _send(
        "invitation_accepted",
        {"invitation": invitation, "member": member, "link": link},
        invitation.invited_by.email,
    )


def send_ownership_offered(*, offer: OwnershipOffer, site_url: str) -> None:
    link = site_url + reverse("accounts:ownership_offer", args=[offer.team.public_id])
    _send("ownership_offered", {"offer": offer, "link": link}, offer.offered_to.user.email)
