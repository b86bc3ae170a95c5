import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from apps.accounts.models import User
from apps.billing import ledger, services, webhooks
from apps.billing.forms import PaymentReceivedForm, StaffCreditForm
from apps.billing.models import LedgerEntry, StripeEvent, TopUp, Wallet

WALLET_FIELDS = (
    "team",
    "balance",
    "held",
    "available",
    "frozen_at",
    "frozen_reason",
    "stripe_customer_id",
    "credit_link",
)
STRIPE_EVENT_FIELDS = (
    "event_id",
    "type",
    "livemode",
    "received_at",
    "processed_at",
    "outcome",
    "attempts",
    "processing_error",
    "pretty_payload",
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff may look; only the app's own code writes these rows."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "team", "kind", "amount", "memo", "job", "topup", "actor"]
    list_filter = ["kind", "created_at"]
    search_fields = ["key", "memo", "team__name", "team__public_id", "job__public_id"]
    list_select_related = ["team", "job", "topup", "actor"]
    date_hierarchy = "created_at"


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ["team", "balance", "held", "available", "frozen_at", "credit_link"]
    list_filter = [("frozen_at", admin.EmptyFieldListFilter)]
    search_fields = ["team__name", "team__public_id", "stripe_customer_id"]
    list_select_related = ["team"]
    actions = ["unfreeze"]
    fields = readonly_fields = WALLET_FIELDS

    @admin.display(description="Available", ordering=F("balance") - F("held"))
    def available(self, wallet: Wallet) -> int:
        return wallet.available

    @admin.display(description="Credits")
    def credit_link(self, wallet: Wallet) -> str:
        return format_html(
            '<a href="{}">Record a payment received</a> · <a href="{}">Grant or adjust credits</a>',
            reverse("admin:billing_wallet_payment", args=[wallet.pk]),
            reverse("admin:billing_wallet_credit", args=[wallet.pk]),
        )

    def has_grant_credits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.grant_credits")

    @admin.action(
        description="Unfreeze the selected wallets (dispute resolved)",
        permissions=["grant_credits"],
    )
    def unfreeze(self, request: HttpRequest, queryset: QuerySet[Wallet]) -> None:
        for wallet in queryset.select_related("team"):
            if ledger.unfreeze(team=wallet.team):
                self.log_change(request, wallet, "Unfroze: dispute resolved")
                self.message_user(request, f"{wallet.team} can submit videos again.")

    def get_urls(self) -> list[URLPattern]:
        credit = self.admin_site.admin_view(self.credit_view)
        payment = self.admin_site.admin_view(self.payment_view)
        return [
            path("<int:pk>/credit/", credit, name="billing_wallet_credit"),
            path("<int:pk>/payment/", payment, name="billing_wallet_payment"),
            *super().get_urls(),
        ]

    def credit_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Staff grant or adjustment: a ledger entry with the staff member and the reason."""
        if not self.has_grant_credits_permission(request):
            raise PermissionDenied
        wallet = get_object_or_404(Wallet.objects.select_related("team"), pk=pk)
        form = StaffCreditForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            staff = request.user
            assert isinstance(staff, User)  # admin_view lets only signed-in staff through
            data = form.cleaned_data
            # The key comes from the rendered form, so a double submit records one entry.
            key = f"staff:{data['submission']}"
            try:
                move = (
                    services.grant_by_staff
                    if data["action"] == StaffCreditForm.GRANT
                    else services.adjust_by_staff
                )
                entry = move(
                    team=wallet.team,
                    credits=data["credits"],
                    key=key,
                    staff=staff,
                    reason=data["reason"],
                )
            except ledger.KeyConflict:
                form.add_error(None, "This form was already submitted with other values.")
            else:
                self.log_change(request, wallet, f"{entry.get_kind_display()} {entry.amount:+d}")
                self.message_user(
                    request,
                    f"Recorded: {entry.get_kind_display().lower()} of {entry.amount:+,d} credits "
                    f"for {wallet.team}.",
                    messages.SUCCESS,
                )
                return redirect("admin:billing_wallet_change", wallet.pk)
        return self._wallet_form(
            request, wallet, form, "credit", f"Grant or adjust credits of {wallet.team}"
        )

    def payment_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """A payment received outside Stripe: a paid top-up, once per reference."""
        if not self.has_grant_credits_permission(request):
            raise PermissionDenied
        wallet = get_object_or_404(Wallet.objects.select_related("team"), pk=pk)
        form = PaymentReceivedForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            staff = request.user
            assert isinstance(staff, User)  # admin_view lets only signed-in staff through
            cents = int(form.cleaned_data["amount"] * 100)
            try:
                topup = services.record_payment(
                    team=wallet.team,
                    cents=cents,
                    reference=form.cleaned_data["reference"],
                    staff=staff,
                )
            except services.PaymentConflict as conflict:
                form.add_error("reference", str(conflict))
            except ValueError:
                form.add_error("amount", "This amount buys no credit.")
            else:
                self.log_change(request, wallet, f"Payment received: {topup.reference}")
                self.message_user(
                    request,
                    f"Recorded: ${topup.amount} received from {wallet.team} (reference "
                    f"{topup.reference}), {topup.credits:,} credits added once.",
                    messages.SUCCESS,
                )
                return redirect("admin:billing_wallet_change", wallet.pk)
        return self._wallet_form(
            request, wallet, form, "payment", f"Record a payment received from {wallet.team}"
        )

    def _wallet_form(
        self, request: HttpRequest, wallet: Wallet, form: forms.Form, page: str, title: str
    ) -> TemplateResponse:
        """One of the wallet's own admin pages (`page`: credit or payment) showing `form`."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "wallet": wallet,
            "form": form,
        }
        return TemplateResponse(request, f"admin/billing/wallet/{page}.html", context)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "team", "credits", "amount", "status", "paid_at", "created_by"]
    list_filter = ["status", "created_at"]
    search_fields = [
        "public_id",
        "reference",
        "checkout_session_id",
        "payment_intent_id",
        "team__name",
        "created_by__email",
    ]
    list_select_related = ["team", "created_by"]
    date_hierarchy = "created_at"


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "type", "event_id", "outcome", "processed_at", "failed"]
    list_filter = ["type", "outcome", ("processed_at", admin.EmptyFieldListFilter), "livemode"]
    search_fields = ["event_id", "type"]
    date_hierarchy = "received_at"
    actions = ["process_again"]
    fields = readonly_fields = STRIPE_EVENT_FIELDS

    @admin.display(description="Error", boolean=True)
    def failed(self, event: StripeEvent) -> bool:
        return bool(event.processing_error)

    @admin.display(description="Payload")
    def pretty_payload(self, event: StripeEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.payload, indent=2, sort_keys=True))

    def has_process_permission(self, request: HttpRequest) -> bool:
        # Re-running a payment's effects is for superusers only.
        return bool(request.user.is_superuser)

    @admin.action(
        description="Process the selected events again (those not yet processed)",
        permissions=["process"],
    )
    def process_again(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        done = sum(webhooks.process(event) for event in queryset.filter(processed_at=None))
        message = ngettext("%(count)d event processed.", "%(count)d events processed.", done)
        self.message_user(request, message % {"count": done})
