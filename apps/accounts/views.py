"""Team pages. Each view under /t/<team_id>/ goes through `team_member_required` (404 for
anyone outside the team) and checks the role its action needs (403) before touching anything;
the services re-check under their locks.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import Resolver404, resolve, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from apps import plural
from apps.accounts import invitations, services
from apps.accounts.access import (
    AuthedRequest,
    MemberRequest,
    default_membership,
    get_membership_or_404,
    get_team_owned,
    remember_team,
    require_role,
    team_member_leaving,
    team_member_required,
)
from apps.accounts.confirm import confirm_page
from apps.accounts.emails import site_url
from apps.accounts.forms import (
    ChangeRoleForm,
    DeleteTeamForm,
    InviteForm,
    LowBalanceForm,
    MonthlyLimitForm,
    NotificationsForm,
    SwitchTeamForm,
    TeamNameForm,
    TwoFactorRequirementForm,
    VideosField,
)
from apps.accounts.invitations import RETURN_TO_INVITATION_SESSION_KEY, InvitationRefused
from apps.accounts.models import (
    MANAGER_ROLES,
    Invitation,
    Membership,
    OwnershipOffer,
    Refusal,
    Role,
    Team,
    TeamEvent,
    User,
)
from apps.accounts.services import ActionRefused
from apps.accounts.usage import MonthUsage, credits_used_this_month_by_member, start_of_month

EVENTS_PER_PAGE = 50


def _first_error(form: Form) -> str:
    return str(next(iter(form.errors.values()))[0])


# --- Your teams -----------------------------------------------------------------------------


@login_required
def teams(request: AuthedRequest) -> HttpResponse:
    memberships = (
        Membership.objects.active()
        .select_related("team")
        .filter(user=request.user)
        .order_by("team__name")
    )
    return TemplateResponse(
        request,
        "accounts/teams.html",
        {"memberships": memberships, "current": default_membership(request)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def create_team(request: AuthedRequest) -> HttpResponse:
    form = TeamNameForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        team = services.create_team(name=form.cleaned_data["name"], owner=request.user)
        remember_team(request, get_membership_or_404(request.user, team.public_id))
        messages.success(request, f"Created {team.name}. You are now working in it.")
        return redirect("accounts:members", team_id=team.public_id)
    return TemplateResponse(request, "accounts/create_team.html", {"form": form})


@login_required
@require_POST
def switch_team(request: AuthedRequest) -> HttpResponse:
    form = SwitchTeamForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Choose one of your teams.", status=400)
    # A team you are not in does not exist, as far as you can tell: 404, nothing remembered.
    membership = get_membership_or_404(request.user, form.cleaned_data["team"])
    remember_team(request, membership)
    messages.success(request, f"You are now working in {membership.team.name}.")
    return redirect(_same_page_in(membership.team, form.cleaned_data["next"]))


def _same_page_in(team: Team, path: str) -> str:
    """The page of `team` that matches `path` (the page the switcher was used on): the same
    section of the other team (its billing, members, …), else its dashboard."""
    try:
        match = resolve(urlsplit(path).path)
    except Resolver404:
        match = None
    if match is not None and set(match.kwargs) == {"team_id"}:
        return reverse(match.view_name, kwargs={"team_id": team.public_id})
    return team.get_absolute_url()


# --- Members and invitations ----------------------------------------------------------------


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    usage: MonthUsage
    can_manage: bool


def _members_context(request: MemberRequest, **extra: object) -> dict[str, object]:
    me = request.membership
    team = me.team
    usage = credits_used_this_month_by_member(team=team)
    rows = [
        MemberRow(
            member,
            MonthUsage(usage.get(member.user_id, 0), member.monthly_credit_limit),
            me.can_manage_member(member),
        )
        for member in Membership.objects.filter(team=team).select_related("user").in_rank_order()
    ]
    context: dict[str, object] = {
        "team": team,
        "me": me,
        "rows": rows,
        "month_start": start_of_month(),
        "offer": OwnershipOffer.objects.filter(team=team)
        .select_related("offered_by__user", "offered_to__user")
        .first(),
    }
    if me.can_manage:
        context["invitations"] = team.invitations.open().select_related("invited_by")
        context["invite_form"] = InviteForm()
    return context | extra


def _members_page(request: MemberRequest, **extra: object) -> HttpResponse:
    """The members page, or only its invitations section for an HTMX request from it."""
    template = "accounts/members.html"
    if request.htmx:
        template += "#invitations"
    return TemplateResponse(request, template, _members_context(request, **extra))


def _after_invitation_change(request: MemberRequest, *, notice: str, ok: bool) -> HttpResponse:
    if request.htmx:
        return _members_page(request, notice=notice, notice_ok=ok)
    (messages.success if ok else messages.error)(request, notice)
    return redirect("accounts:members", team_id=request.membership.team.public_id)


@team_member_required
def members(request: MemberRequest) -> HttpResponse:
    return _members_page(request)


@team_member_required
@require_POST
def invite(request: MemberRequest) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = invitations.invite(
                team=request.membership.team,
                email=form.cleaned_data["email"],
                role=Role(form.cleaned_data["role"]),
                invited_by=request.user,
                site_url=site_url(request),
            )
        except ActionRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            return _after_invitation_change(
                request, notice=f"Invitation sent to {invitation.email}.", ok=True
            )
    return _members_page(request, invite_form=form)


def _get_team_invitation(request: MemberRequest, invitation_id: int) -> Invitation:
    return get_team_owned(request, Invitation.objects.select_related("team"), pk=invitation_id)


@team_member_required
@require_POST
def resend_invitation(request: MemberRequest, invitation_id: int) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    invitation = _get_team_invitation(request, invitation_id)
    try:
        invitations.resend_invitation(
            invitation=invitation, actor=request.user, site_url=site_url(request)
        )
    except ActionRefused as refusal:
        return _after_invitation_change(request, notice=str(refusal), ok=False)
    return _after_invitation_change(
        request,
        notice=f"Sent a new link to {invitation.email}; the previous one no longer works.",
        ok=True,
    )


@team_member_required
@require_http_methods(["GET", "POST"])
def revoke_invitation(request: MemberRequest, invitation_id: int) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    invitation = _get_team_invitation(request, invitation_id)
    if request.method == "GET":
        return confirm_page(
            request,
            title=f"Revoke the invitation to {invitation.email}?",
            explanation=[
                "The link they were sent stops working at once. You can invite them again later."
            ],
            button="Revoke the invitation",
            back=reverse("accounts:members", args=[invitation.team.public_id]),
        )
    try:
        invitations.revoke_invitation(invitation=invitation, actor=request.user)
    except ActionRefused as refusal:
        return _after_invitation_change(request, notice=str(refusal), ok=False)
    return _after_invitation_change(
        request, notice=f"Revoked the invitation to {invitation.email}.", ok=True
    )


# --- One member -----------------------------------------------------------------------------


def _get_managed_member(request: MemberRequest, membership_id: int) -> Membership:
    """A member of this team whom the person may manage: 404 if no such member, else 403."""
    target = get_team_owned(
        request, Membership.objects.select_related("user", "team"), pk=membership_id
    )
    if not request.membership.can_manage_member(target):
        raise PermissionDenied
    return target


def _back_to_member(target: Membership) -> HttpResponse:
    return redirect("accounts:member", team_id=target.team.public_id, membership_id=target.pk)


@team_member_required
def member(request: MemberRequest, membership_id: int) -> HttpResponse:
    target = _get_managed_member(request, membership_id)
    me = request.membership
    offer = OwnershipOffer.objects.filter(team=me.team).select_related("offered_to__user").first()
    return TemplateResponse(
        request,
        "accounts/member.html",
        {
            "team": me.team,
            "me": me,
            "target": target,
            "usage": MonthUsage(
                credits_used_this_month_by_member(team=me.team).get(target.user_id, 0),
                target.monthly_credit_limit,
            ),
            "role_form": ChangeRoleForm(initial={"role": target.role}),
            "limit_form": MonthlyLimitForm(
                initial={
                    "monthly_credit_limit": VideosField.initial_from(target.monthly_credit_limit)
                }
            ),
            "offer": offer,
            "can_remove": me.can_remove(target),
            "can_offer_ownership": me.is_owner and not target.is_owner and offer is None,
        },
    )


@team_member_required
@require_POST
def change_role(request: MemberRequest, membership_id: int) -> HttpResponse:
    target = _get_managed_member(request, membership_id)
    form = ChangeRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _first_error(form))
        return _back_to_member(target)
    role = Role(form.cleaned_data["role"])
    try:
        services.change_role(actor=request.membership, target=target, role=role)
    except ActionRefused as refusal:
        messages.error(request, str(refusal))
        return _back_to_member(target)
    messages.success(request, f"{target.user.email} is now {role.label.lower()}.")
    return redirect("accounts:members", team_id=target.team.public_id)


@team_member_required
@require_POST
def set_limit(request: MemberRequest, membership_id: int) -> HttpResponse:
    target = _get_managed_member(request, membership_id)
    form = MonthlyLimitForm(request.POST)
    if not form.is_valid():
        messages.error(request, _first_error(form))
        return _back_to_member(target)
    limit: int | None = form.cleaned_data["monthly_credit_limit"]
    try:
        services.set_monthly_limit(actor=request.membership, target=target, limit=limit)
    except ActionRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("accounts:members", team_id=target.team.public_id)
    if limit is None:
        messages.success(request, f"{target.user.email} has no monthly limit.")
    else:
        videos = limit // settings.CREDITS_PER_VIDEO
        messages.success(
            request,
            f"{target.user.email} may make {plural.videos(videos)} a month"
            f" ({plural.credits(limit)}).",
        )
    return redirect("accounts:members", team_id=target.team.public_id)


@team_member_required
@require_http_methods(["GET", "POST"])
def remove_member(request: MemberRequest, membership_id: int) -> HttpResponse:
    target = _get_managed_member(request, membership_id)
    if not request.membership.can_remove(target):
        raise PermissionDenied  # yourself: leaving has its own page and rules
    if request.method == "GET":
        return confirm_page(
            request,
            title=f"Remove {target.user.email} from {target.team.name}?",
            explanation=[
                "They lose access to the team's videos and credits at once, and we email them "
                "that they were removed.",
                "The videos they made stay in the team, and so does the activity log.",
            ],
            button=f"Remove {target.user.email}",
            back=reverse("accounts:member", args=[target.team.public_id, target.pk]),
        )
    try:
        services.remove_member(actor=request.membership, target=target)
    except ActionRefused as refusal:
        messages.error(request, str(refusal))
        return _back_to_member(target)
    messages.success(
        request, f"Removed {target.user.email}. Their videos stay in {target.team.name}."
    )
    return redirect("accounts:members", team_id=target.team.public_id)


# --- Ownership transfer ---------------------------------------------------------------------


def _get_open_offer(request: MemberRequest) -> OwnershipOffer:
    return get_team_owned(
        request,
        OwnershipOffer.objects.select_related("team", "offered_by__user", "offered_to__user"),
    )


@team_member_required
@require_POST
def offer_ownership(request: MemberRequest, membership_id: int) -> HttpResponse:
    require_role(request.membership, Role.OWNER)
    target = _get_managed_member(request, membership_id)
    try:
        services.offer_ownership(
            actor=request.membership, target=target, site_url=site_url(request)
        )
    except ActionRefused as refusal:
        messages.error(request, str(refusal))
        return _back_to_member(target)
    messages.success(
        request,
        f"Offered ownership to {target.user.email}. They become an owner (and you an admin)"
        " when they accept.",
    )
    return redirect("accounts:members", team_id=target.team.public_id)


@team_member_required
def ownership_offer(request: MemberRequest) -> HttpResponse:
    """The page the "ownership offered" email links to: only for the person offered it."""
    offer = _get_open_offer(request)
    if offer.offered_to_id != request.membership.pk:
        raise PermissionDenied
    return TemplateResponse(
        request, "accounts/ownership_offer.html", {"offer": offer, "team": offer.team}
    )


@team_member_required
@require_POST
def accept_ownership(request: MemberRequest) -> HttpResponse:
    offer = _get_open_offer(request)
    if offer.offered_to_id != request.membership.pk:
        raise PermissionDenied
    try:
        services.accept_ownership(membership=request.membership)
    except ActionRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"You are now an owner of {offer.team.name}.")
    return redirect("accounts:members", team_id=offer.team.public_id)


@team_member_required
@require_POST
def close_ownership_offer(request: MemberRequest) -> HttpResponse:
    """An owner cancels the open offer, or the person offered it declines."""
    offer = _get_open_offer(request)
    declining = offer.offered_to_id == request.membership.pk
    if not (declining or request.membership.is_owner):
        raise PermissionDenied
    try:
        services.close_ownership_offer(offer=offer, by=request.membership)
    except ActionRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request, "You declined the offer." if declining else "The offer is canceled."
        )
    return redirect("accounts:members", team_id=offer.team.public_id)


# --- Activity and settings ------------------------------------------------------------------


@team_member_required
def activity(request: MemberRequest) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    events = TeamEvent.objects.filter(team=request.membership.team)
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "accounts/activity.html",
        {"team": request.membership.team, "me": request.membership, "page": page},
    )


def _settings_page(
    request: MemberRequest,
    *,
    rename_form: TeamNameForm | None = None,
    low_balance_form: LowBalanceForm | None = None,
) -> HttpResponse:
    me = request.membership
    team = me.team
    context: dict[str, object] = {
        "team": team,
        "me": me,
        "can_delete": me.is_owner and not team.is_personal,
    }
    if me.can_manage:
        context["rename_form"] = rename_form or TeamNameForm(initial={"name": team.name})
        context["low_balance_form"] = low_balance_form or LowBalanceForm(
            initial={"low_balance_threshold": VideosField.initial_from(team.low_balance_threshold)}
        )
    if me.is_owner:
        context["two_factor_form"] = TwoFactorRequirementForm(
            initial={"require_mfa": team.require_mfa}
        )
    return TemplateResponse(request, "accounts/team_settings.html", context)


@team_member_required
@require_POST
def set_low_balance(request: MemberRequest) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    form = LowBalanceForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, low_balance_form=form)
    team = request.membership.team
    threshold: int | None = form.cleaned_data["low_balance_threshold"]
    # A new threshold starts afresh: the next check emails if credits are already below it.
    Team.objects.filter(pk=team.pk).update(
        low_balance_threshold=threshold, low_balance_alerted=False
    )
    if threshold is None:
        messages.success(request, "No low-balance email will be sent.")
    else:
        videos = threshold // settings.CREDITS_PER_VIDEO
        messages.success(
            request,
            f"Owners and admins are emailed when fewer than {videos:,} video{pluralize(videos)}"
            f" ({threshold:,} credits) are left.",
        )
    return redirect("accounts:team_settings", team_id=team.public_id)


@login_required
@require_http_methods(["GET", "POST"])
def notifications(request: AuthedRequest) -> HttpResponse:
    """The emails a person may turn off (the ones about their account always go)."""
    form = NotificationsForm(
        request.POST if request.method == "POST" else None, instance=request.user
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved your email settings.")
        return redirect("notifications")
    return TemplateResponse(request, "accounts/notifications.html", {"form": form})


@team_member_required
def team_settings(request: MemberRequest) -> HttpResponse:
    return _settings_page(request)


@team_member_required
@require_POST
def rename_team(request: MemberRequest) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    form = TeamNameForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, rename_form=form)
    team = request.membership.team
    services.rename_team(team=team, name=form.cleaned_data["name"], actor=request.user)
    messages.success(request, f"The team is now called {team.name}.")
    return redirect("accounts:team_settings", team_id=team.public_id)


def _unused_credits_warning(team: Team) -> str:
    # Read through the reverse relation: accounts, the ground floor, imports no billing code.
    wallet = getattr(team, "wallet", None)
    available = max(wallet.available, 0) if wallet else 0
    if not available:
        return "It has no unused credits."
    videos = available // settings.CREDITS_PER_VIDEO
    return (
        f"Its {available:,} unused credits (enough for {videos:,} video{pluralize(videos)}) are "
        "lost with it: they cannot be moved to another team or used afterwards. For a refund of "
        f"paid credits, write to {settings.SUPPORT_EMAIL} before you delete it."
    )


@team_member_required
@require_POST
def require_two_factor(request: MemberRequest) -> HttpResponse:
    require_role(request.membership, Role.OWNER)
    form = TwoFactorRequirementForm(request.POST)
    team = request.membership.team
    if form.is_valid():
        required: bool = form.cleaned_data["require_mfa"]
        try:
            services.set_two_factor_requirement(actor=request.membership, required=required)
        except ActionRefused as refusal:
            messages.error(request, str(refusal))
        else:
            messages.success(
                request,
                f"Every member of {team.name} now needs two-factor authentication to use it."
                if required
                else f"Two-factor authentication is optional in {team.name}.",
            )
    return redirect("accounts:team_settings", team_id=team.public_id)


@team_member_required
@require_http_methods(["GET", "POST"])
def delete_team(request: MemberRequest) -> HttpResponse:
    require_role(request.membership, Role.OWNER)
    team = request.membership.team
    if team.is_personal:
        messages.error(request, "A personal team can't be deleted.")
        return redirect("accounts:team_settings", team_id=team.public_id)
    form = DeleteTeamForm(request.POST if request.method == "POST" else None, team=team)
    if not form.is_valid():
        return confirm_page(
            request,
            title=f"Delete {team.name}?",
            explanation=[
                "The team disappears for every member: nobody can submit, download or buy "
                "credits in it any more. Its history is kept for our records.",
                _unused_credits_warning(team),
            ],
            button="Delete the team",
            back=reverse("accounts:team_settings", args=[team.public_id]),
            form=form,
        )
    try:
        services.archive_team(team=team, actor=request.membership)
    except ActionRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("accounts:team_settings", team_id=team.public_id)
    messages.success(request, f"Deleted {team.name}.")
    return redirect("accounts:teams")


@team_member_leaving
@require_http_methods(["GET", "POST"])
def leave_team(request: MemberRequest) -> HttpResponse:
    team = request.membership.team
    if request.method == "GET":
        return confirm_page(
            request,
            title=f"Leave {team.name}?",
            explanation=[
                "You lose access to the team's videos and credits at once; only an owner or "
                "admin can invite you back. The videos you made stay with the team."
            ],
            button="Leave the team",
            back=reverse("accounts:team_settings", args=[team.public_id]),
        )
    try:
        services.leave_team(membership=request.membership)
    except ActionRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("accounts:team_settings", team_id=team.public_id)
    messages.success(request, f"You left {team.name}.")
    return redirect("accounts:teams")


# --- Accepting an invitation ----------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: explains the invitation, and joins the team on POST.

    Anyone holding the link sees what it invites to; only the signed-in owner of the invited,
    confirmed address can accept it.
    """
    found = invitations.find_invitation(token)
    user = request.user if isinstance(request.user, User) else None
    if request.method == "POST":
        if user is None:
            return redirect_to_login(request.path)
        try:
            membership = invitations.accept_invitation(
                token=token, user=user, site_url=site_url(request)
            )
        except InvitationRefused as refused:
            return _invitation_page(request, found, user, refused.refusal, status=403)
        remember_team(request, membership)
        messages.success(request, f"Welcome to {membership.team.name}! You are working in it now.")
        return redirect(membership.team)
    refusal = found.refusal_for(user) if found else Refusal.UNKNOWN
    return _invitation_page(request, found, user, refusal, status=200)


def _invitation_page(
    request: HttpRequest,
    found: Invitation | None,
    user: User | None,
    refusal: Refusal | None,
    *,
    status: int,
) -> HttpResponse:
    if found is None:
        status = 404
    elif refusal == Refusal.UNVERIFIED or (user is None and refusal is None):
        # Confirming their address is the step between this person and the team: bring them
        # back here once they have (AccountAdapter reads this).
        request.session[RETURN_TO_INVITATION_SESSION_KEY] = request.path
        if user is None:
            invitations.remember_opened_invitation(request, found)
    back_here = urlencode({"next": request.path})
    signup_query = urlencode({"email": found.email, "next": request.path}) if found else back_here
    return TemplateResponse(
        request,
        "accounts/invitation.html",
        {
            "invitation": found,
            "refusal": refusal,
            "signup_url": f"{reverse('account_signup')}?{signup_query}",
            "login_url": f"{reverse('account_login')}?{back_here}",
        },
        status=status,
    )
