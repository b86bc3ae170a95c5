from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import ngettext

from apps import taskqueue
from apps.jobs import lifecycle, queue
from apps.jobs.models import IN_FLIGHT_STATES, Job, JobEvent, Money
from apps.removal import balance
from apps.removal.models import ProviderAlert
from apps.removal.registry import REGISTRY, get_provider

BALANCE_WAIT_SECONDS = 2.0


def provider_balances() -> str:
    """The remaining credits of each provider paid in advance, for staff; remembered briefly,
    never slow."""
    figures = []
    for name in REGISTRY:
        provider = get_provider(name)
        if not provider.keeps_a_balance:
            continue
        answer = balance.remaining_credits(name, wait_seconds=BALANCE_WAIT_SECONDS)
        if answer.credits is None:
            figures.append(f"{provider.label} balance unavailable ({answer.problem})")
        else:
            figures.append(f"{answer.credits:,} {provider.label} credits left")
    return " · ".join(figures)


def dollars(micros: int | None) -> str:
    """Millionths of a dollar as dollars, to a hundredth of a cent ("—" when unknown)."""
    if micros is None:
        return "—"
    sign = "-" if micros < 0 else ""
    return f"{sign}${Decimal(abs(micros)) / 1_000_000:,.4f}"


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "from_state", "to_state", "detail")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    view_on_site = False  # a job's page is for its team; staff see it here
    list_display = [
        "public_id",
        "video",
        "state",
        "team",
        "created_by",
        "provider",
        "task_id",
        "created_at",
        "finished_at",
        "duration",
        "credits",
        "cost",
        "margin",
    ]
    list_filter = ["state", "provider", "created_at", "team"]
    list_select_related = ["team", "created_by"]
    search_fields = [
        "original_name",
        "source_url",
        "task_id",
        "public_id",
        "created_by__email",
        "team__name",
    ]
    date_hierarchy = "created_at"
    readonly_fields = [*(field.name for field in Job._meta.fields), "machine"]
    inlines = [JobEventInline]
    actions = ["retry_selected", "fail_and_release"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False  # money history: jobs are never deleted

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, object] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "provider_balance": provider_balances(),
            "open_alerts": ProviderAlert.objects.filter(resolved_at__isnull=True),
            "worker_clusters": taskqueue.clusters(),
            "costs_url": reverse("admin:jobs_job_costs"),
        }
        return super().changelist_view(request, extra_context)

    @admin.display(description="Video", ordering="original_name")
    def video(self, job: Job) -> str:
        """What the team calls it: the uploaded file's name, or the share link's id."""
        return job.video_id

    @admin.display(description="Machine")
    def machine(self, job: Job) -> str:
        """Which of its provider's machines ran it, by name and address: staff see host names,
        customers never do (they read `cleaned_by`)."""
        return get_provider(job.provider).describe_machine(job.provider_server) or "—"

    @admin.display(description="Our cost", ordering="provider_cost_micros")
    def cost(self, job: Job) -> str:
        return dollars(job.provider_cost_micros)

    @admin.display(description="Margin")
    def margin(self, job: Job) -> str:
        """What the team was charged at the list price, less our cost (failed jobs earn
        nothing); blank while the job runs."""
        return "" if job.is_in_flight else dollars(job.margin_micros)

    def get_urls(self) -> list[URLPattern]:
        costs = self.admin_site.admin_view(self.costs_view)
        return [path("costs/", costs, name="jobs_job_costs"), *super().get_urls()]

    def costs_view(self, request: HttpRequest) -> HttpResponse:
        """Videos, charged, cost and margin over a date range (UTC days), in total and by
        provider."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = CostRangeForm(request.GET or None)
        today = timezone.now().date()
        start, end = today - timedelta(days=29), today
        if form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        jobs = Job.objects.filter(created_at__gte=_day(start), created_at__lt=_day(end, 1))
        names = jobs.order_by("provider").values_list("provider", flat=True).distinct()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Costs and margin, {start:%-d %b %Y} to {end:%-d %b %Y}",
            "form": form,
            "rows": [_money_row(name, jobs.filter(provider=name).money()) for name in names],
            "total": _money_row("Total", jobs.money()),
        }
        return TemplateResponse(request, "admin/jobs/job/costs.html", context)

    @admin.display(description="Duration", ordering=F("finished_at") - F("created_at"))
    def duration(self, job: Job) -> str:
        end = job.finished_at or timezone.now()
        seconds = int((end - job.created_at).total_seconds())
        return f"{seconds // 60}m {seconds % 60:02d}s" + ("" if job.finished_at else " (running)")

    # Actions declare the permission they need: view-only staff are not offered them, and
    # a hand-made POST of one is ignored.
    @admin.action(
        description="Retry: run the next step of selected in-flight jobs now",
        permissions=["change"],
    )
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        jobs = queryset.filter(state__in=IN_FLIGHT_STATES)
        count = jobs.update(next_check_at=timezone.now())
        queue.start_poller()
        self.message_user(
            request,
            ngettext(
                "%(count)d job will be picked up by the poller now.",
                "%(count)d jobs will be picked up by the poller now.",
                count,
            )
            % {"count": count},
        )

    @admin.action(
        description="Fail and release credits of selected in-flight jobs", permissions=["change"]
    )
    def fail_and_release(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        failed = 0
        for job in queryset.filter(state__in=IN_FLIGHT_STATES):
            failed += lifecycle.fail_job(
                job,
                code="staff",
                message="Stopped by our staff. Nothing was charged.",
            )
        level = messages.SUCCESS if failed else messages.WARNING
        message = ngettext(
            "%(count)d job failed and its credits were released.",
            "%(count)d jobs failed and their credits were released.",
            failed,
        )
        self.message_user(request, message % {"count": failed}, level)


def _money_row(name: str, money: Money) -> dict[str, object]:
    return {
        "name": name,
        "videos": money.videos,
        "charged_videos": money.charged_videos,
        "charged": dollars(money.charged_micros),
        "cost": dollars(money.cost_micros),
        "margin": dollars(money.margin_micros),
        "priced_videos": money.priced_videos,
    }


def _day(day: date, offset: int = 0) -> datetime:
    return datetime.combine(day + timedelta(days=offset), time.min, tzinfo=UTC)


class CostRangeForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The range must start on or before its last day.")
        return data
