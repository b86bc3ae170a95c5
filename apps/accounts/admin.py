from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from apps.accounts import services
from apps.accounts.models import Invitation, Membership, Role, Team, TeamEvent, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_deleted_objects(
        self, objs: Sequence[User] | QuerySet[User], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        # Teams a person alone owns block their deletion, like protected rows: the admin says
        # which, and refuses the POST, for one person or a selection.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for user in objs:
            protected += [
                f"{team.name}: {user.email} is its only owner. Make another member an owner "
                "first (Teams → the team → Memberships)."
                for team in services.teams_left_without_owner(user)
            ]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        services.delete_user(user=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.delete_user(user=user)


class MembershipFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        """A team with members keeps at least one owner, whatever staff change here."""
        super().clean()
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if kept and not any(data.get("role") == Role.OWNER for data in kept):
            raise ValidationError(
                "A team with members needs an owner: make one of them an owner first."
            )


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "is_personal", "created_at", "archived_at"]
    list_filter = ["is_personal", ("archived_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "public_id", "memberships__user__email"]
    readonly_fields = ["public_id", "created_at"]
    inlines = [MembershipInline]
    view_on_site = False  # a team's pages are for its members; staff are usually not one


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records of what happened: staff read them, the app alone writes them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "team", "role", "status", "invited_by", "created_at", "expires_at"]
    list_filter = ["role"]
    list_select_related = ["team", "invited_by"]
    search_fields = ["email", "team__name", "invited_by__email"]
    exclude = ["token_hash"]
    date_hierarchy = "created_at"


@admin.register(TeamEvent)
class TeamEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "team", "kind", "actor_email", "subject_email", "detail"]
    list_filter = ["kind"]
    list_select_related = ["team"]
    search_fields = ["team__name", "actor_email", "subject_email", "detail"]
    date_hierarchy = "created_at"
