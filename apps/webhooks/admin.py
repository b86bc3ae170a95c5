from typing import ClassVar

from django.contrib import admin
from django.http import HttpRequest

from apps.webhooks.models import Delivery, Endpoint


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Staff see where teams send their webhooks and why one was turned off; the secrets stay
    out of sight (a team rotates its own)."""

    list_display = ("url", "team", "enabled", "failing_since", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "team__name")
    exclude = ("secret", "previous_secret")
    readonly_fields: ClassVar[list[str]] = [
        "team",
        "url",
        "events",
        "previous_secret_until",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "created_by",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The delivery log across teams, read-only: the record of what was sent and answered."""

    list_display = ("message_id", "event_type", "endpoint", "state", "attempts", "last_status")
    list_filter = ("state", "event_type")
    search_fields = ("message_id", "endpoint__url")
    list_select_related = ("endpoint",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
