"""Invitations: owners and admins invite people by email; the emailed link lets the person who
owns that address join, once, within a week.

The raw token exists only in the email. Resending makes a new token (the old link stops
working) and a new expiry. Sends are rate-limited per team and per address so the app cannot
be used to flood someone's inbox.
"""

import secrets
import time

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts import emails
from apps.accounts.models import (
    INVITATION_LIFETIME,
    Invitation,
    Membership,
    Refusal,
    Role,
    Team,
    TeamEventKind,
    User,
    hash_token,
)
from apps.accounts.services import ActionRefused, record_team_event

INVITATIONS_PER_TEAM_PER_HOUR = 20
INVITATIONS_PER_ADDRESS_PER_DAY = 5
HOUR = 60 * 60
DAY = 24 * HOUR

# Where to send someone once they confirm their email address: the invitation they could not
# accept yet because their address was unconfirmed (see AccountAdapter).
RETURN_TO_INVITATION_SESSION_KEY = "invitation_after_email_confirmation"
# The open invitation whose emailed link a signed-out visitor opened in this browser: signing
# up with its address then needs no second confirmation email (see AccountAdapter).
OPENED_INVITATION_SESSION_KEY = "invitation_opened"


class InvitationRefused(ActionRefused):
    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        super().__init__(refusal.label)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_invitation(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("team", "invited_by")
        .filter(token_hash=hash_token(token))
        .first()
    )


def remember_opened_invitation(request: HttpRequest, invitation: Invitation) -> None:
    request.session[OPENED_INVITATION_SESSION_KEY] = invitation.pk


def invitation_opened_in(request: HttpRequest) -> Invitation | None:
    """The invitation opened in this browser by its link, while it can still be accepted."""
    pk = request.session.get(OPENED_INVITATION_SESSION_KEY)
    invitation = Invitation.objects.select_related("team").filter(pk=pk).first() if pk else None
    if invitation is None or invitation.refusal_for(None) is not None:
        return None
    return invitation


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def _window_key(name: str, seconds: int) -> str:
    return f"{name}:{int(time.time()) // seconds}"


def _take_send_allowance(*, team: Team, email: str) -> None:
    """Counts one invitation email against the team's hourly and the address's daily allowance,
    or refuses when either is used up.

    Fixed windows in the shared cache: enough to stop a flood, and cheap.
    """
    team_key = _window_key(f"invitation-sends:team:{team.pk}", HOUR)
    # Hashed: an email address can be longer than some caches accept in a key.
    address_key = _window_key(f"invitation-sends:to:{hash_token(email)}", DAY)
    if cache.get(team_key, 0) >= INVITATIONS_PER_TEAM_PER_HOUR:
        raise ActionRefused(
            f"{team.name} has sent {INVITATIONS_PER_TEAM_PER_HOUR} invitations within the hour,"
            " the most allowed. Please try again later."
        )
    if cache.get(address_key, 0) >= INVITATIONS_PER_ADDRESS_PER_DAY:
        raise ActionRefused(
            f"{email} has been sent {INVITATIONS_PER_ADDRESS_PER_DAY} invitations today, the most"
            " allowed. Please try again tomorrow."
        )
    for key, seconds in ((team_key, HOUR), (address_key, DAY)):
        cache.add(key, 0, timeout=seconds)
        cache.incr(key)


def _is_member(team: Team, email: str) -> bool:
    return team.memberships.filter(
        Q(user__email__iexact=email)
        | Q(user__emailaddress__email__iexact=email, user__emailaddress__verified=True)
    ).exists()


def _already_pending(email: str) -> ActionRefused:
    return ActionRefused(
        f"{email} already has a pending invitation. Resend it from the list if it got lost."
    )


def invite(*, team: Team, email: str, role: Role, invited_by: User, site_url: str) -> Invitation:
    """Creates an invitation and emails its link to `email`."""
    email = normalize_email(email)
    if _is_member(team, email):
        raise ActionRefused(f"{email} is already a member of {team.name}.")
    with transaction.atomic():
        existing = team.invitations.open().select_for_update().filter(email=email).first()
        if existing and not existing.is_expired:
            raise _already_pending(email)
        _take_send_allowance(team=team, email=email)
        token, token_hash = _new_token()
        now = timezone.now()
        fields = {
            "role": role,
            "invited_by": invited_by,
            "token_hash": token_hash,
            "last_sent_at": now,
            "expires_at": now + INVITATION_LIFETIME,
        }
        if existing:
            # One open invitation per address and team: an expired one is renewed in place.
            for name, value in fields.items():
                setattr(existing, name, value)
            existing.save(update_fields=list(fields))
            invitation = existing
        else:
            try:
                with transaction.atomic():
                    invitation = Invitation.objects.create(team=team, email=email, **fields)
            except IntegrityError:  # the same address, invited at the same moment
                raise _already_pending(email) from None
        record_team_event(
            team=team,
            kind=TeamEventKind.INVITED,
            actor=invited_by,
            subject_email=email,
            detail=f"As {invitation.get_role_display().lower()}",
        )
    emails.send_invitation(invitation=invitation, token=token, site_url=site_url)
    return invitation


def _lock_open(invitation: Invitation) -> Invitation:
    locked = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("team", "invited_by")
        .get(pk=invitation.pk)
    )
    if not locked.is_open:
        raise ActionRefused(f"The invitation to {locked.email} is already {locked.status}.")
    return locked


def resend_invitation(*, invitation: Invitation, actor: User, site_url: str) -> None:
    """Emails a fresh link with a fresh week to run; the previous link stops working."""
    with transaction.atomic():
        invitation = _lock_open(invitation)
        _take_send_allowance(team=invitation.team, email=invitation.email)
        token, invitation.token_hash = _new_token()
        invitation.last_sent_at = timezone.now()
        invitation.expires_at = invitation.last_sent_at + INVITATION_LIFETIME
        invitation.save(update_fields=["token_hash", "last_sent_at", "expires_at"])
        record_team_event(
            team=invitation.team,
            kind=TeamEventKind.INVITATION_RESENT,
            actor=actor,
            subject_email=invitation.email,
        )
    emails.send_invitation(invitation=invitation, token=token, site_url=site_url)


def revoke_invitation(*, invitation: Invitation, actor: User) -> None:
    with transaction.atomic():
        invitation = _lock_open(invitation)
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        record_team_event(
            team=invitation.team,
            kind=TeamEventKind.INVITATION_REVOKED,
            actor=actor,
            subject_email=invitation.email,
        )


def accept_invitation(*, token: str, user: User, site_url: str) -> Membership:
    """`user` joins the team with the invited role; raises `InvitationRefused` if they can't."""
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("team", "invited_by")
            .filter(token_hash=hash_token(token))
            .first()
        )
        if invitation is None:
            raise InvitationRefused(Refusal.UNKNOWN)
        if refusal := invitation.refusal_for(user):
            raise InvitationRefused(refusal)
        try:
            with transaction.atomic():
                membership = Membership.objects.create(
                    team=invitation.team, user=user, role=invitation.role
                )
        except IntegrityError:  # joined through another invitation at the same moment
            raise InvitationRefused(Refusal.ALREADY_MEMBER) from None
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        inviter = invitation.invited_by
        record_team_event(
            team=invitation.team,
            kind=TeamEventKind.JOINED,
            actor=user,
            subject_email=user.email,
            detail=f"As {invitation.get_role_display().lower()}"
            + (f", invited by {inviter.email}" if inviter else ""),
        )
    # Only someone still in the team hears about who joined it.
    if inviter and invitation.team.memberships.filter(user=inviter).exists():
        emails.send_invitation_accepted(invitation=invitation, member=user, site_url=site_url)
    return membership
