"""Who may see what. Every team-owned page lives under `/t/<team public id>/…`, names its
team in the URL and goes through `team_member_required`; the objects it touches come from
`get_team_owned`, which looks only inside that team.

Outsiders get 404 (they must not learn that a thing exists); members without the needed role
get 403. Archived (deleted) teams are treated as if they did not exist.
"""

import functools
from collections.abc import Callable
from typing import Concatenate
from uuid import UUID

from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django_htmx.middleware import HtmxDetails

from apps.accounts.models import Membership, Role, User

# The team chosen last with the switcher (or just created or joined): where `/dashboard/`
# and `/billing/` lead. Only POSTs write it; opening a team's page changes nothing.
SESSION_KEY = "current_team"


class AuthedRequest(HttpRequest):
    """A request from a signed-in person (views behind `login_required`)."""

    user: User
    htmx: HtmxDetails


class MemberRequest(AuthedRequest):
    """A request to a page of the team named in its URL, from a member of that team."""

    membership: Membership


type MemberView[**P] = Callable[Concatenate[MemberRequest, P], HttpResponseBase]
type TeamView[**P] = Callable[Concatenate[HttpRequest, UUID, P], HttpResponseBase]


def team_member_required[**P](view: MemberView[P]) -> TeamView[P]:
    """For views under `/t/<team_id>/`: signs the person in, 404s unless they are a member of
    that team, sends them to set up two-factor authentication when the team requires it, and
    sets `request.membership` to their membership of it.
    """
    return _team_member(view, check_two_factor=True)


def team_member_leaving[**P](view: MemberView[P]) -> TeamView[P]:
    """Like `team_member_required`, for leaving the team: someone who would rather go than set
    up the two-factor authentication the team now requires may still leave it."""
    return _team_member(view, check_two_factor=False)


def _team_member[**P](view: MemberView[P], *, check_two_factor: bool) -> TeamView[P]:
    @functools.wraps(view)
    def wrapper(
        request: HttpRequest, team_id: UUID, *args: P.args, **kwargs: P.kwargs
    ) -> HttpResponseBase:
        membership = get_membership_or_404(request.user, team_id)  # type: ignore[arg-type]
        if check_two_factor and (setup := two_factor_setup_redirect(request, membership)):
            return setup
        request.membership = membership  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)  # type: ignore[arg-type]

    return login_required(wrapper)


def two_factor_setup_redirect(request: HttpRequest, membership: Membership) -> HttpResponse | None:
    """Where to send someone whose team requires two-factor authentication they lack, else None.

    They are told why and land on the page that sets it up; their other teams stay open.
    """
    if not membership.team.require_mfa or is_mfa_enabled(membership.user):
        return None
    messages.warning(
        request,
        f"{membership.team.name} requires two-factor authentication. Set up an authenticator"
        " app or a security key to keep working in it, or switch to another team.",
    )
    url = reverse("mfa_index")
    if getattr(request, "htmx", False):
        # A partial refresh would swap this page into a fragment: ask htmx to leave instead.
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return redirect(url)


def get_team_owned[M: Model](request: MemberRequest, queryset: QuerySet[M], **lookup: object) -> M:
    """One object (it has a `team` field) of the team in the URL, else 404: another team's
    object under your team's URL does not exist."""
    return get_object_or_404(queryset.filter(team=request.membership.team), **lookup)


def get_membership_or_404(user: User, team_public_id: object) -> Membership:
    return get_object_or_404(
        Membership.objects.active().select_related("team"),
        user=user,
        team__public_id=team_public_id,
    )


def require_role(membership: Membership, *roles: Role) -> None:
    if membership.role not in roles:
        raise PermissionDenied


def default_membership(request: HttpRequest) -> Membership | None:
    """The team a person lands in when no URL names one: the one they chose last, else their
    personal team, else their oldest. None when they are in no team at all.
    """
    if hasattr(request, "_default_membership"):
        return request._default_membership
    membership = None
    if request.user.is_authenticated:
        memberships = Membership.objects.active().select_related("team").filter(user=request.user)
        if remembered := request.session.get(SESSION_KEY):
            membership = memberships.filter(team__public_id=remembered).first()
        if membership is None:
            membership = memberships.order_by("-team__is_personal", "created_at", "id").first()
    request._default_membership = membership  # type: ignore[attr-defined]
    return membership


def remember_team(request: HttpRequest, membership: Membership) -> None:
    """Makes `membership`'s team the one `/dashboard/` leads to. Only for POSTs."""
    request.session[SESSION_KEY] = str(membership.team.public_id)
    request._default_membership = membership  # type: ignore[attr-defined]


def page_membership(request: HttpRequest) -> Membership | None:
    """The team a page is about, for the header: the one in the URL, else the default one."""
    return getattr(request, "membership", None) or default_membership(request)
