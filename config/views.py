from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("jobs:dashboard")
    return TemplateResponse(
        request,
        "home.html",
        {
            "original_retention_hours": settings.ORIGINAL_RETENTION_HOURS,
            "max_files": settings.UPLOAD_MAX_FILES,
            "max_seconds": settings.UPLOAD_MAX_SECONDS,
        },
    )
