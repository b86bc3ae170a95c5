from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from apps.accounts.access import default_membership

FAVICON = "img/favicon.ico"
FAVICON_CACHE_SECONDS = 24 * 3600


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


@cache
def _favicon_bytes() -> bytes | None:
    found = finders.find(FAVICON)
    path = Path(found) if isinstance(found, str) else settings.STATIC_ROOT / FAVICON
    return path.read_bytes() if path.is_file() else None


def favicon(request: HttpRequest) -> HttpResponse:
    """The app's icon at /favicon.ico: browsers ask for it by themselves (opening a video or a
    CSV directly, and older ones on every page), and it must not be the 404 page."""
    icon = _favicon_bytes()
    if icon is None:
        raise Http404("No icon.")
    response = HttpResponse(icon, content_type="image/x-icon")
    response["Cache-Control"] = f"public, max-age={FAVICON_CACHE_SECONDS}"
    return response
