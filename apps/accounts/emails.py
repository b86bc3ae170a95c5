"""Every email the product sends, and the team emails: invitation, invitation accepted,
ownership offered, removed from a team.

Each email is a text template (`<name>_subject.txt`, `<name>_message.txt`) plus its HTML
twin, made by one layout (`email/layout.html`) from the same text, so the two never disagree.
Both name the product and its address from settings, never the host a request came in on.
Callers send them after their transaction commits, so nobody hears of a change that was
rolled back.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from apps.accounts.models import Invitation, OwnershipOffer, Team, User


def site_url(request: HttpRequest | None = None) -> str:
    """The address links in emails start with: the configured one, whatever host the request
    came in on (it may be an internal name)."""
    return str(settings.SITE_URL)


def brand() -> dict[str, str]:
    """What every email (ours and allauth's) names itself by."""
    return {"product_name": settings.PRODUCT_NAME, "site_url": settings.SITE_URL}


def compose(
    *, subject: str, text: str, to: list[str], headers: dict[str, str] | None = None
) -> EmailMultiAlternatives:
    """A text email with its HTML twin made from the same text by the brand layout."""
    message = EmailMultiAlternatives(
        settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + subject, text, None, to, headers=headers
    )
    message.attach_alternative(
        render_to_string("email/layout.html", {"subject": subject, "text": text, **brand()}),
        "text/html",
    )
    return message


def send_template(
    template: str,
    context: dict[str, object],
    to: list[str],
    *,
    headers: dict[str, str] | None = None,
) -> None:
    """Sends `templates/<template>_subject.txt` and `_message.txt` to `to`."""
    context = {**brand(), **context}
    # A subject is one line, whatever the template's trailing newline.
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    text = render_to_string(f"{template}_message.txt", context).strip() + "\n"
    compose(subject=subject, text=text, to=to, headers=headers).send()


def _send(template: str, context: dict[str, object], to: str) -> None:
    send_template(f"accounts/email/{template}", context, [to])


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


def send_removed_from_team(*, team: Team, person: User, by: User | None) -> None:
    _send(
        "removed_from_team",
        {"team": team, "person": person, "by": by, "link": site_url() + reverse("accounts:teams")},
        person.email,
    )
