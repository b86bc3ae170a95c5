from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("jobs:dashboard")
    return TemplateResponse(request, "home.html")
