from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("jobs:dashboard")
    return TemplateResponse(request, "home.html")


LEGAL_PAGES = {"terms": "Terms of service", "privacy": "Privacy", "contact": "Contact"}


def legal(request: HttpRequest, page: str) -> HttpResponse:
    """Terms, Privacy and Contact: `templates/legal/<page>.html`, which an operator replaces
    with their own text by placing a file of that name in SITE_TEMPLATES_DIR."""
    return TemplateResponse(request, f"legal/{page}.html", {"page_title": LEGAL_PAGES[page]})
