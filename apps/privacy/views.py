"""The person's own data: download it all, or delete the account."""

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.accounts.access import AuthedRequest
from apps.accounts.services import ActionRefused
from apps.privacy import deletion, export
from apps.privacy.forms import DeleteAccountForm


@login_required
def my_data(request: AuthedRequest) -> HttpResponse:
    return TemplateResponse(request, "privacy/my_data.html")


@login_required
def download_my_data(request: AuthedRequest) -> StreamingHttpResponse:
    filename = f"unmark-data-{timezone.now():%Y-%m-%d}.zip"
    return StreamingHttpResponse(
        export.stream_export(request.user),
        content_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request: AuthedRequest) -> HttpResponse:
    user = request.user
    form = DeleteAccountForm(request.POST if request.method == "POST" else None, user=user)
    blocking = deletion.teams_blocking_deletion(user)
    if not blocking and form.is_valid():
        try:
            deletion.delete_account(user=user)
        except ActionRefused as refusal:  # a team changed hands since the page was shown
            messages.error(request, str(refusal))
            return redirect("privacy:delete_account")
        logout(request)
        messages.success(request, "Your account is deleted. Thank you for using Unmark.")
        return redirect("home")
    return TemplateResponse(
        request,
        "privacy/delete_account.html",
        {"form": form, "blocking": blocking},
        status=400 if request.method == "POST" else 200,
    )
