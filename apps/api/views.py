import json

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.access import MemberRequest, get_team_owned, require_role, team_member_required
from apps.accounts.confirm import confirm_page
from apps.accounts.models import MANAGER_ROLES
from apps.api import keys
from apps.api.forms import ApiKeyForm
from apps.api.models import ApiKey
from apps.api.problems import Problem

# The new key waits in the session for the page the creation redirects to, which takes it
# out: shown once, never in an address, and a refresh posts nothing again.
_NEW_KEY = "api_keys:new-key:{}"


@csrf_exempt  # like the API itself: no session, so nothing to forge
def not_found(request: HttpRequest, rest: str) -> HttpResponse:
    """Any other address under /api/v1/: a problem document, as every API answer is."""
    return Problem(404, "not-found", "Not found", "There is no such API address.").response()


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    """Swagger UI from our own static files (django-ninja ships them): no CDN, inside the CSP."""
    swagger = {
        "url": reverse("api:openapi-json"),
        "layout": "BaseLayout",
        "deepLinking": True,
        "persistAuthorization": False,
    }
    return TemplateResponse(request, "api/docs.html", {"swagger_settings": json.dumps(swagger)})


@team_member_required
@require_GET
def api_keys(request: MemberRequest) -> HttpResponse:
    team = request.membership.team
    new_key = request.session.pop(_NEW_KEY.format(team.public_id), "")
    response = _page(request, ApiKeyForm(), new_key=new_key)
    if new_key:
        # It is stored nowhere we could show it from again, and no cache (the back button
        # included) may keep it.
        patch_cache_control(response, no_store=True)
    return response


def _page(
    request: MemberRequest, form: ApiKeyForm, *, new_key: str = "", status: int = 200
) -> HttpResponse:
    team = request.membership.team
    context = {
        "team": team,
        "me": request.membership,
        "keys": ApiKey.objects.filter(team=team).select_related("created_by", "revoked_by"),
        "form": form,
        "new_key": new_key,
        "docs_url": reverse("api_docs"),
        "site_url": settings.SITE_URL,
    }
    return TemplateResponse(request, "api/keys.html", context, status=status)


@team_member_required
@require_POST
def create_key(request: MemberRequest) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    _, raw_key = keys.create_key(
        membership=request.membership,
        name=form.cleaned_data["name"],
        read_only=form.cleaned_data["read_only"],
    )
    team = request.membership.team
    request.session[_NEW_KEY.format(team.public_id)] = raw_key
    return redirect("api_keys:list", team.public_id)


@team_member_required
@require_http_methods(["GET", "POST"])
def revoke_key(request: MemberRequest, key_id: int) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    key = get_team_owned(request, ApiKey.objects.select_related("team"), pk=key_id)
    back = reverse("api_keys:list", args=[key.team.public_id])
    if request.method == "GET":
        return confirm_page(
            request,
            title=f"Revoke the API key “{key.name}”?",
            explanation=[
                f"Requests with {key.prefix}… are refused from now on. Jobs it already created "
                "carry on. This cannot be undone: make a new key if you need one."
            ],
            button="Revoke the key",
            back=back,
        )
    if keys.revoke_key(key=key, actor=request.user):
        messages.success(request, f"Revoked “{key.name}”. It no longer works.")
    else:
        messages.info(request, f"“{key.name}” was already revoked.")
    return redirect(back)
