"""Staff's view of the removal wing: provider alerts (resolve one to hide its banner), the
on/off switch per provider (with a reason), and the SWC pool's servers."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import ngettext

from apps.accounts.models import User
from apps.removal import routing
from apps.removal.base import InputKind
from apps.removal.models import PoolTask, ProviderAlert, ProviderSwitch, SwcServer
from apps.removal.registry import REGISTRY, get_provider, policy
from apps.removal.swc import pool


def _staff(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


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

    @admin.display(description="Videos on it")
    def jobs_on_it(self, server: SwcServer) -> int:
        return pool.holding_places().filter(server=server).count()

    @admin.action(description="Probe again now", permissions=["change"])
    def probe_now(self, request: HttpRequest, queryset: QuerySet[SwcServer]) -> None:
        queryset.filter(healthy=False).update(next_probe_at=timezone.now())
        back = pool.probe_due_servers()
        message = ngettext(
            "%(count)d server back in the pool.", "%(count)d servers back in the pool.", back
        )
        self.message_user(request, message % {"count": back})


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
        url = reverse("admin:removal_providerswitch_switch", args=[switch.pk])
        return format_html(
            '<a href="{}">{}</a>', url, "Switch off…" if switch.enabled else "Switch on…"
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.switch_view)
        return [
            path("<int:pk>/switch/", view, name="removal_providerswitch_switch"),
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
            return HttpResponseRedirect(reverse("admin:removal_providerswitch_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Switch {get_provider(switch.provider).label} {'on' if turn_on else 'off'}",
            "switch": switch,
            "turn_on": turn_on,
            "form": form,
        }
        return TemplateResponse(request, "admin/removal/providerswitch/switch.html", context)


@admin.register(PoolTask)
class PoolTaskAdmin(admin.ModelAdmin):
    """Where each video went in the pool, and how its task ended: read-only."""

    list_display = ["task_id", "server", "reference", "booked_at", "progress", "outcome"]
    list_filter = ["outcome", "server"]
    search_fields = ["task_id", "reference"]
    readonly_fields = [field.name for field in PoolTask._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PoolTask | None = None) -> bool:
        return False
