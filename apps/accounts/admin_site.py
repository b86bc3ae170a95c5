"""The admin site: staff see every team's money and jobs, so where settings say so (production)
they must have two-factor authentication before it lets them in."""

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


class UnmarkAdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and (
            not settings.STAFF_REQUIRE_MFA or is_mfa_enabled(request.user)
        )

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        user = request.user
        if user.is_active and user.is_staff and not self.has_permission(request):
            # Signed in and staff: what is missing is the second factor, not the password.
            messages.warning(request, "Set up two-factor authentication to use the admin.")
            return redirect("mfa_index")
        return super().login(request, extra_context)
