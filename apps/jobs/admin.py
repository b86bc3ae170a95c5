from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import ngettext

from apps.accounts.models import User
from apps.jobs import queue, routing, swc_pool
from apps.jobs.models import (
    IN_FLIGHT_STATES,
    InputKind,
    Job,
    JobEvent,
    Money,
    ProviderAlert,
    ProviderSwitch,
    SwcServer,
)
from apps.jobs.providers import REGISTRY, balance, get_provider, policy

BALANCE_WAIT_SECONDS = 2.0


def provider_balance() -> str:
    """The Kie account's remaining credits, for staff; remembered briefly, never slow."""
    answer = balance.remaining_credits("kie", wait_seconds=BALANCE_WAIT_SECONDS)
    if answer.credits is None:
        return f"Kie balance unavailable ({answer.problem})"
    return f"{answer.credits:,} Kie credits left"


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
    search_fields = ["source_url", "task_id", "public_id", "created_by__email", "team__name"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Job._meta.fields]
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
            "provider_balance": provider_balance(),
            "open_alerts": ProviderAlert.objects.filter(resolved_at__isnull=True),
            "worker_clusters": queue.clusters(),
            "costs_url": reverse("admin:jobs_job_costs"),
        }
        return super().changelist_view(request, extra_context)

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
            failed += job.fail(
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


@admin.register(ProviderAlert)
class ProviderAlertAdmin(admin.ModelAdmin):
    list_display = [
        "provider",
        "kind",
        "message",
        "occurrences",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
    ]
    list_filter = ["provider", "kind", ("resolved_at", admin.EmptyFieldListFilter)]
    readonly_fields = [
        "provider",
        "kind",
        "message",
        "occurrences",
        "first_seen_at",
        "last_seen_at",
    ]
    actions = ["mark_resolved"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Mark resolved (hide the banner)", permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[ProviderAlert]) -> None:
        count = queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        message = ngettext("%(count)d alert resolved.", "%(count)d alerts resolved.", count)
        self.message_user(request, message % {"count": count})


@admin.register(SwcServer)
class SwcServerAdmin(admin.ModelAdmin):
    """The SWC pool as workers see it. Servers come from `SWC_SERVERS`, not from here; staff
    can only ask for a server to be probed again now."""

    list_display = [
        "url",
        "healthy",
        "jobs_on_it",
        "down_reason",
        "down_since",
        "next_probe_at",
        "finished_count",
        "api_prefix",
    ]
    readonly_fields = [field.name for field in SwcServer._meta.fields]
    actions = ["probe_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SwcServer | None = None) -> bool:
        return False

    @admin.display(description="Jobs on it")
    def jobs_on_it(self, server: SwcServer) -> int:
        return Job.objects.filter(
            provider=swc_pool.PROVIDER, provider_server=server.url, state__in=swc_pool.ACTIVE_STATES
        ).count()

    @admin.action(description="Probe again now", permissions=["change"])
    def probe_now(self, request: HttpRequest, queryset: QuerySet[SwcServer]) -> None:
        queryset.filter(healthy=False).update(next_probe_at=timezone.now())
        back = swc_pool.probe_due_servers()
        message = ngettext(
            "%(count)d server back in the pool.", "%(count)d servers back in the pool.", back
        )
        self.message_user(request, message % {"count": back})


def _staff(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


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


class SwitchForm(forms.Form):
    reason = forms.CharField(
        max_length=300,
        help_text="Why: shown here to other staff (people using the app see only that it is "
        "switched off).",
    )


@admin.register(ProviderSwitch)
class ProviderSwitchAdmin(admin.ModelAdmin):
    """Staff switch a provider off (its jobs that have not started go to the next one of the
    routing policy) and back on, each time with a reason."""

    list_display = [
        "provider",
        "label",
        "takes",
        "on_or_off",
        "standing",
        "reason",
        "changed_by",
        "changed_at",
        "switch_link",
    ]
    readonly_fields = ["provider", "enabled", "reason", "changed_by", "changed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: ProviderSwitch | None = None
    ) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, object] | None = None
    ) -> HttpResponse:
        # Every provider there is has a row to switch, on until someone switches it off.
        ProviderSwitch.objects.bulk_create(
            [ProviderSwitch(provider=name, reason="") for name in REGISTRY],
            ignore_conflicts=True,
        )
        return super().changelist_view(request, extra_context)

    @admin.display(description="Name")
    def label(self, switch: ProviderSwitch) -> str:
        return get_provider(switch.provider).label

    @admin.display(description="Takes (place in the policy)")
    def takes(self, switch: ProviderSwitch) -> str:
        places = [
            f"{InputKind(kind).label.lower()}s (#{policy(kind).index(switch.provider) + 1})"
            for kind in InputKind
            if switch.provider in policy(kind)
        ]
        return ", ".join(places) or "not in the policy"

    @admin.display(description="Switch", boolean=False)
    def on_or_off(self, switch: ProviderSwitch) -> str:
        return "On" if switch.enabled else "Off"

    @admin.display(description="Health")
    def standing(self, switch: ProviderSwitch) -> str:
        alert = (
            ProviderAlert.objects.filter(provider=switch.provider, resolved_at__isnull=True)
            .order_by("-last_seen_at")
            .first()
        )
        return f"{alert.kind}: {alert.message}" if alert else "healthy"

    @admin.display(description="")
    def switch_link(self, switch: ProviderSwitch) -> str:
        url = reverse("admin:jobs_providerswitch_switch", args=[switch.pk])
        return format_html(
            '<a href="{}">{}</a>', url, "Switch off…" if switch.enabled else "Switch on…"
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.switch_view)
        return [
            path("<int:pk>/switch/", view, name="jobs_providerswitch_switch"),
            *super().get_urls(),
        ]

    def switch_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        switch = get_object_or_404(ProviderSwitch, pk=pk)
        if not self.has_change_permission(request, switch):
            raise PermissionDenied
        turn_on = not switch.enabled
        form = SwitchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            if routing.switch(
                name=switch.provider, enabled=turn_on, reason=reason, by=_staff(request)
            ):
                self.log_change(request, switch, f"Switched {'on' if turn_on else 'off'}: {reason}")
                self.message_user(
                    request, f"{switch.provider} is switched {'on' if turn_on else 'off'}."
                )
            else:
                self.message_user(
                    request, f"{switch.provider} already was; nothing changed.", messages.WARNING
                )
            return HttpResponseRedirect(reverse("admin:jobs_providerswitch_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Switch {get_provider(switch.provider).label} {'on' if turn_on else 'off'}",
            "switch": switch,
            "turn_on": turn_on,
            "form": form,
        }
        return TemplateResponse(request, "admin/jobs/providerswitch/switch.html", context)
