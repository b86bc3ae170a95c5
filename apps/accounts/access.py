"""Who may see what: every view that touches team-owned data goes through these helpers.

Outsiders get 404 (they must not learn that a thing exists); members without the needed role
get 403. Archived (deleted) teams are treated as if they did not exist, here and only here.
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
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django_htmx.middleware import HtmxDetails

from apps.accounts.models import Membership, Role, User

SESSION_KEY = "current_team"


class AuthedRequest(HttpRequest):
    """A request from a signed-in person (views behind `login_required`)."""

    user: User
    htmx: HtmxDetails


class MemberRequest(AuthedRequest):
    """A request from a signed-in person acting in their current team."""

    membership: Membership


def get_for_member[M: Model](user: User, queryset: QuerySet[M], **lookup: object) -> M:
    """Fetches one team-owned object (it has a `team` field) that `user` belongs to, else 404."""
    if not user.is_authenticated:
        raise Http404
    return get_object_or_404(
        queryset.filter(team__memberships__user=user, team__archived_at__isnull=True), **lookup
    )


def get_membership_or_404(user: User, team_public_id: object) -> Membership:
    return get_object_or_404(
        Membership.objects.active().select_related("team"),
        user=user,
        team__public_id=team_public_id,
    )


def require_role(membership: Membership, *roles: Role) -> None:
    if membership.role not in roles:
        raise PermissionDenied


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership of the team the person is acting in, remembered in the session.

    Falls back to their personal team, then to their oldest membership, when the remembered
    team is gone (they left or were removed, or the team was deleted).
    """
    if hasattr(request, "_current_membership"):
        return request._current_membership
    membership = None
    user = request.user
    if user.is_authenticated:
        memberships = Membership.objects.active().select_related("team").filter(user=user)
        remembered = request.session.get(SESSION_KEY)
        if remembered:
            membership = memberships.filter(team__public_id=remembered).first()
        if membership is None:
            membership = memberships.order_by("-team__is_personal", "created_at", "id").first()
            if membership is not None:
                remember_team(request, membership)
    request._current_membership = membership  # type: ignore[attr-defined]
    return membership


def remember_team(request: HttpRequest, membership: Membership) -> None:
    team_id = str(membership.team.public_id)
    if request.session.get(SESSION_KEY) != team_id:  # saves a session write on every page
        request.session[SESSION_KEY] = team_id
    request._current_membership = membership  # type: ignore[attr-defined]


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


type MemberView[**P] = Callable[Concatenate[MemberRequest, P], HttpResponseBase]
type PlainView[**P] = Callable[Concatenate[HttpRequest, P], HttpResponseBase]


def member_required[**P](view: MemberView[P]) -> PlainView[P]:
    """Signs the person in if needed and sets `request.membership` to their current team's.

    Someone in no team at all (they left every team) is sent to the teams page to make one.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        membership = current_membership(request)
        if membership is None:
            return redirect("accounts:teams")
        if setup := two_factor_setup_redirect(request, membership):
            return setup
        request.membership = membership  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)  # type: ignore[arg-type]

    return login_required(wrapper)


type TeamView[**P] = Callable[Concatenate[HttpRequest, UUID, P], HttpResponseBase]


def team_member_required[**P](view: MemberView[P]) -> TeamView[P]:
    """For views under `/teams/<team_id>/`: signs the person in, 404s unless they are a member
    of that team, sends them to set up two-factor authentication when the team requires it,
    and sets `request.membership` to their membership of it.

    The team whose page you open becomes the team you work in, so the header's switcher always
    names the team the page is about.
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
        remember_team(request, membership)
        request.membership = membership  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)  # type: ignore[arg-type]

    return login_required(wrapper)
