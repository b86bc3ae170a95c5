from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.api import keys
from apps.api.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Staff see every key and may revoke one; keys are made only where they can be shown
    once (the team page, `create_api_key`), never here."""

    list_display = [
        "name", "prefix", "team", "read_only", "created_by", "created_at", "last_used_at",
        "revoked_at",
    ]  # fmt: skip
    list_filter = ["read_only", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "team__name", "created_by__email"]
    list_select_related = ["team", "created_by"]
    readonly_fields = [field.name for field in ApiKey._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoked keys stay, with who revoked them

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = sum(
            keys.revoke_key(key=key, actor=request.user)  # type: ignore[arg-type]
            for key in queryset.select_related("team")
        )
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)
