from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.accounts.access import (
    AuthedRequest,
    current_membership,
    get_membership_or_404,
    remember_team,
)
from apps.accounts.forms import SwitchTeamForm
from apps.accounts.models import Membership


@login_required
def teams(request: AuthedRequest) -> HttpResponse:
    memberships = (
        Membership.objects.select_related("team").filter(user=request.user).order_by("team__name")
    )
    return TemplateResponse(
        request,
        "accounts/teams.html",
        {"memberships": memberships, "current": current_membership(request)},
    )


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
    next_url = form.cleaned_data["next"]
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "jobs:dashboard"
    return redirect(next_url)
