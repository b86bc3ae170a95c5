"""A team's webhook pages, under /t/<team>/webhooks/. Owners and admins manage endpoints;
members get 403 and outsiders 404 (`team_member_required`). Every form works without
JavaScript; with htmx, the delivery log refreshes in place.
"""

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.access import MemberRequest, get_team_owned, require_role, team_member_required
from apps.accounts.confirm import confirm_page
from apps.accounts.models import MANAGER_ROLES
from apps.webhooks import services
from apps.webhooks.forms import EndpointForm
from apps.webhooks.models import Delivery, Endpoint, EventType

DELIVERIES_PER_PAGE = 25
# The secret is shown once, on the page after it was made; the session carries it there.
_NEW_SECRET = "webhooks:new-secret:{}"  # noqa: S105 — a session key, not a secret


def _get_endpoint(request: MemberRequest, endpoint_id: UUID) -> Endpoint:
    require_role(request.membership, *MANAGER_ROLES)
    return get_team_owned(request, Endpoint.objects.select_related("team"), public_id=endpoint_id)


def _show_secret_once(request: MemberRequest, endpoint: Endpoint, secret: str) -> None:
    request.session[_NEW_SECRET.format(endpoint.public_id)] = secret


@team_member_required
@require_http_methods(["GET", "POST"])
def endpoints(request: MemberRequest) -> HttpResponse:
    require_role(request.membership, *MANAGER_ROLES)
    team = request.membership.team
    form = EndpointForm(
        request.POST if request.method == "POST" else None,
        initial={"events": list(EventType.values)},
    )
    if form.is_valid():
        endpoint = services.create_endpoint(
            team=team,
            url=form.cleaned_data["url"],
            events=form.cleaned_data["events"],
            actor=request.user,
        )
        _show_secret_once(request, endpoint, endpoint.secret)
        messages.success(request, "Endpoint added. Copy its signing secret now.")
        return redirect(endpoint.get_absolute_url())
    return TemplateResponse(
        request,
        "webhooks/endpoints.html",
        {
            "team": team,
            "me": request.membership,
            "endpoints": Endpoint.objects.filter(team=team),
            "form": form,
            "timeout_seconds": settings.WEBHOOK_TIMEOUT_SECONDS,
        },
        status=400 if form.is_bound else 200,
    )


@team_member_required
@require_http_methods(["GET", "POST"])
def endpoint(request: MemberRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _get_endpoint(request, endpoint_id)
    if request.method == "POST":
        form = EndpointForm(request.POST)
        if form.is_valid():
            services.change_endpoint(
                endpoint=endpoint,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                actor=request.user,
            )
            messages.success(request, "Endpoint saved.")
            return redirect(endpoint.get_absolute_url())
    else:
        form = EndpointForm(initial={"url": endpoint.url, "events": endpoint.events})
    deliveries = Delivery.objects.filter(endpoint=endpoint)
    page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "team": endpoint.team,
        "me": request.membership,
        "endpoint": endpoint,
        "form": form,
        "page": page,
        "disable_after_days": settings.WEBHOOK_DISABLE_AFTER_DAYS,
    }
    if request.htmx:
        return TemplateResponse(request, "webhooks/endpoint.html#deliveries", context)
    context["new_secret"] = request.session.pop(_NEW_SECRET.format(endpoint.public_id), "")
    response = TemplateResponse(
        request, "webhooks/endpoint.html", context, status=400 if form.is_bound else 200
    )
    if context["new_secret"]:
        # Shown on this page only: no cache (the browser's back button included) may keep it.
        patch_cache_control(response, no_store=True)
    return response


@team_member_required
@require_http_methods(["GET", "POST"])
def rotate_secret(request: MemberRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _get_endpoint(request, endpoint_id)
    if request.method == "GET":
        return confirm_page(
            request,
            title="Rotate the signing secret?",
            explanation=[
                "A new secret is made and shown once. For the next day, messages carry two "
                "signatures, one with each secret, so your receiver keeps working while you "
                "switch it to the new one.",
                "After that, only the new secret signs.",
            ],
            button="Rotate the secret",
            back=endpoint.get_absolute_url(),
        )
    secret = services.rotate_secret(endpoint=endpoint, actor=request.user)
    _show_secret_once(request, endpoint, secret)
    messages.success(request, "Secret rotated. Copy the new one now.")
    return redirect(endpoint.get_absolute_url())


@team_member_required
@require_http_methods(["GET", "POST"])
def remove_endpoint(request: MemberRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _get_endpoint(request, endpoint_id)
    if request.method == "GET":
        return confirm_page(
            request,
            title=f"Remove {endpoint.url}?",
            explanation=[
                "Nothing more is sent to it, messages still waiting are dropped and its "
                "delivery log is deleted."
            ],
            button="Remove the endpoint",
            back=endpoint.get_absolute_url(),
        )
    services.remove_endpoint(endpoint=endpoint, actor=request.user)
    messages.success(request, f"Removed {endpoint.url}.")
    return redirect("webhooks:endpoints", team_id=endpoint.team.public_id)


@team_member_required
@require_POST
def enable_endpoint(request: MemberRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _get_endpoint(request, endpoint_id)
    if services.enable_endpoint(endpoint=endpoint, actor=request.user):
        messages.success(request, "Endpoint turned back on. New events are sent to it again.")
    return redirect(endpoint.get_absolute_url())


def _after_sending(request: MemberRequest, endpoint: Endpoint, note: str) -> HttpResponse:
    if not endpoint.enabled:
        messages.error(request, "The endpoint is off: turn it back on first.")
    else:
        messages.success(request, note)
    return redirect(endpoint.get_absolute_url())


@team_member_required
@require_POST
def send_test_event(request: MemberRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _get_endpoint(request, endpoint_id)
    if endpoint.enabled:
        services.send_test_event(endpoint=endpoint, actor=request.user)
    return _after_sending(request, endpoint, "Test event on its way: see the log below.")


@team_member_required
@require_POST
def resend_delivery(request: MemberRequest, endpoint_id: UUID, delivery_id: int) -> HttpResponse:
    endpoint = _get_endpoint(request, endpoint_id)
    # Only a delivery of this endpoint, which `_get_endpoint` found inside the team.
    delivery = get_object_or_404(Delivery, pk=delivery_id, endpoint=endpoint)
    if endpoint.enabled:
        services.resend(delivery=delivery)
    return _after_sending(request, endpoint, "Sent again: see the log below.")
