"""The question a destructive action asks first, shared by every app's pages (leaving a team,
revoking an API key, removing a webhook endpoint...)."""

from django.forms import Form
from django.http import HttpResponse
from django.template.response import TemplateResponse

from apps.accounts.access import MemberRequest


def confirm_page(
    request: MemberRequest,
    *,
    title: str,
    explanation: list[str],
    button: str,
    back: str,
    form: Form | None = None,
) -> HttpResponse:
    """The question a destructive action asks first (GET shows it, POST does it). Opened by
    `static/js/app.js` in a dialog (only the form then), or as a page without JavaScript."""
    template = "confirm.html#dialog" if request.headers.get("X-Confirm-Dialog") else "confirm.html"
    context = {
        "title": title,
        "explanation": explanation,
        "button": button,
        "back": back,
        "form": form,
        "action": request.path,
    }
    return TemplateResponse(request, template, context)
