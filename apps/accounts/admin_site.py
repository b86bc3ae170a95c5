"""The admin site: staff see every team's money and jobs, so where settings say so (production)
they must have two-factor authentication before it lets them in. Anyone else signed in gets
404 there, as at /ops/: its existence is nobody else's business."""

import functools
from collections.abc import Callable
from typing import cast

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse


def _signed_in_outsider(request: HttpRequest) -> bool:
    user = request.user
    return user.is_authenticated and not (user.is_active and user.is_staff)


class UnmarkAdminSite(admin.AdminSite):
    def admin_view[V: Callable[..., HttpResponseBase]](self, view: V, cacheable: bool = False) -> V:
        guarded = super().admin_view(view, cacheable)

        # Before the admin's own check, which would send them to its sign-in page.
        def view_for_staff(
            request: HttpRequest, *args: object, **kwargs: object
        ) -> HttpResponseBase:
            if _signed_in_outsider(request):
                raise Http404
            return guarded(request, *args, **kwargs)

        return cast(V, functools.update_wrapper(view_for_staff, guarded))

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and (
            not settings.STAFF_REQUIRE_MFA or is_mfa_enabled(request.user)
        )

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            # The product's sign-in asks for the second factor and counts failed attempts; the
            # admin's own form would let a password alone in.
            next_url = request.GET.get("next") or reverse("admin:index")
            return redirect_to_login(next_url, login_url=reverse("account_login"))
        if _signed_in_outsider(request):
            raise Http404
        if not self.has_permission(request):
            # Signed in and staff: what is missing is the second factor, not the password.
            messages.warning(request, "Set up two-factor authentication to use the admin.")
            return redirect("mfa_index")
        return super().login(request, extra_context)
