"""The operations page: how many videos, how many failed and why, how long they waited, what
they cost and earned, whether the GPU pool keeps up. Staff only; its figures come from
`apps.ops.figures.build`, rendered as a page or as CSV."""

import csv
import functools
from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.ops import charts
from apps.ops.figures import Figures, build, flatten
from apps.ops.forms import PeriodForm


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Staff only, on the admin's terms (two-factor where settings ask for it). Anyone else
    signed in gets 404: the page's existence is nobody else's business, and sending them to
    sign in again would only loop."""

    @functools.wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            raise Http404
        if not admin.site.has_permission(request):
            messages.warning(request, "Set up two-factor authentication to see operations.")
            return redirect("mfa_index")
        return view(request, *args, **kwargs)

    return wrapped


@staff_required
@require_GET
def overview(request: HttpRequest) -> TemplateResponse:
    form = PeriodForm(request.GET)
    if not form.is_valid():
        return TemplateResponse(request, "ops/overview.html", {"form": form}, status=400)
    figures = build(form.period)
    context = {"form": form, "figures": figures, "charts": figure_charts(figures)}
    return TemplateResponse(request, "ops/overview.html", context)


@staff_required
@require_GET
def figures_csv(request: HttpRequest) -> HttpResponse:
    form = PeriodForm(request.GET)
    if not form.is_valid():
        errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    period = form.period
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    csv.writer(response).writerows(flatten(build(period).rows()))
    filename = f"unmark-ops-{period.first}-to-{period.last}-{timezone.now():%Y%m%dT%H%M}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def figure_charts(figures: Figures) -> dict[str, charts.Chart]:
    by = "hour" if figures.period.bucket == "hour" else "day"
    labels = figures.labels
    rate = [None if r is None else 100 * r for r in figures.success_rate]
    timing = figures.timing_by_bucket
    return {
        "states": charts.bars(
            id="chart-states",
            title=f"Videos per {by} by state",
            description="Videos submitted in each period, by the state they are in now.",
            labels=labels,
            series=[(s.name, s.values) for s in figures.by_state],
        ),
        "providers": charts.bars(
            id="chart-providers",
            title=f"Videos per {by} by provider",
            description="Videos submitted in each period, by the provider that took them.",
            labels=labels,
            series=[(s.name, s.values) for s in figures.by_provider],
        ),
        "success": charts.lines(
            id="chart-success",
            title=f"Success rate per {by}",
            description="Share of the videos that ended which succeeded (canceled ones aside).",
            labels=labels,
            series=[("success rate", rate)],
            unit="%",
            top=100,
        ),
        "timings": charts.lines(
            id="chart-timings",
            title=f"Waiting and processing per {by} (p50 and p95)",
            description="Seconds from submission to the send, and from the send to the end.",
            labels=labels,
            series=[
                ("waiting p50", [t.wait_p50 for t in timing]),
                ("waiting p95", [t.wait_p95 for t in timing]),
                ("processing p50", [t.work_p50 for t in timing]),
                ("processing p95", [t.work_p95 for t in timing]),
            ],
            unit="s",
        ),
        "money": charts.bars(
            id="chart-money",
            title=f"Top-ups paid and provider spend per {by}",
            description="Dollars paid for credits, beside what the videos cost at providers.",
            labels=labels,
            series=[
                (figures.revenue.name, figures.revenue.values),
                (figures.spend.name, figures.spend.values),
            ],
            unit="$",
            stacked=False,
        ),
    }
