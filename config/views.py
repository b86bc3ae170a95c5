from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from apps.accounts.access import default_membership


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return to_team_page(request, page="jobs:dashboard")
    return TemplateResponse(
        request,
        "home.html",
        {
            "original_retention_hours": settings.ORIGINAL_RETENTION_HOURS,
            "max_files": settings.UPLOAD_MAX_FILES,
            "max_seconds": settings.UPLOAD_MAX_SECONDS,
        },
    )


@login_required
def to_team_page(request: HttpRequest, *, page: str) -> HttpResponse:
    """Sends a person to `page` of their default team, or to the teams page to make one when
    they are in none."""
    membership = default_membership(request)
    if membership is None:
        return redirect("accounts:teams")
    return redirect(page, team_id=membership.team.public_id)


LEGAL_PAGES = {"terms": "Terms of service", "privacy": "Privacy", "contact": "Contact"}


def legal(request: HttpRequest, page: str) -> HttpResponse:
    """Terms, Privacy and Contact: `templates/legal/<page>.html`, which an operator replaces
    with their own text by placing a file of that name in SITE_TEMPLATES_DIR."""
    return TemplateResponse(request, f"legal/{page}.html", {"page_title": LEGAL_PAGES[page]})
