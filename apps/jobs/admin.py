from django.contrib import admin, messages
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import ngettext

from apps.jobs import queue, swc_pool
from apps.jobs.models import IN_FLIGHT_STATES, Job, JobEvent, ProviderAlert, SwcServer
from apps.jobs.providers import balance

BALANCE_WAIT_SECONDS = 2.0


def provider_balance() -> str:
    """The Kie account's remaining credits, for staff; remembered briefly, never slow."""
    answer = balance.remaining_credits("kie", wait_seconds=BALANCE_WAIT_SECONDS)
    if answer.credits is None:
        return f"Kie balance unavailable ({answer.problem})"
    return f"{answer.credits:,} Kie credits left"


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
        }
        return super().changelist_view(request, extra_context)

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
