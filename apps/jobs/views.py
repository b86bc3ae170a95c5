from django.http import HttpResponse
from django.template.response import TemplateResponse

from apps.accounts.access import MemberRequest, member_required


@member_required
def dashboard(request: MemberRequest) -> HttpResponse:
    return TemplateResponse(request, "jobs/dashboard.html", {"team": request.membership.team})
