import csv
import logging
from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from apps import plural
from apps.accounts.access import MemberRequest, get_team_owned, team_member_required
from apps.accounts.models import MANAGER_ROLES, Membership, Team
from apps.accounts.usage import limit_left
from apps.billing import history_csv, ledger, services, webhooks
from apps.billing import stripe_gateway as gateway
from apps.billing.forms import CheckoutForm
from apps.billing.models import LedgerEntry, TopUp, TopUpStatus

logger = logging.getLogger(__name__)

LEDGER_PAGE_SIZE = 25
TOPUP_HISTORY_SIZE = 20


@team_member_required
@require_GET
def overview(request: MemberRequest) -> HttpResponse:
    return _overview(request, CheckoutForm())


@team_member_required
@require_POST
def checkout(request: MemberRequest) -> HttpResponse:
    membership = request.membership
    if not membership.can_buy_credits:
        raise PermissionDenied
    if not gateway.is_configured():
        messages.error(
            request,
            f"Card payments are not available yet: write to {settings.SUPPORT_EMAIL} to add"
            " credits.",
        )
        return redirect(_overview_url(membership.team))
    form = CheckoutForm(request.POST)
    if not form.is_valid():
        return _overview(request, form, status=400)
    if ledger.open_wallet(membership.team).is_frozen:
        messages.error(request, "Top-ups are paused while a payment dispute is open.")
        return redirect(_overview_url(membership.team))
    success_url = request.build_absolute_uri(
        reverse("billing:success", kwargs={"team_id": membership.team.public_id})
    )
    try:
        payment_url = services.start_checkout(
            team=membership.team,
            buyer=request.user,
            credits=form.cleaned_data["pack"],
            # Stripe fills in the session id; the braces must reach it unescaped.
            success_url=success_url + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=request.build_absolute_uri(_overview_url(membership.team)),
        )
    except gateway.StripeGatewayError:
        messages.error(
            request, "Stripe could not start the payment. Nothing was charged; please try again."
        )
        return redirect(_overview_url(membership.team))
    return redirect(payment_url)


@team_member_required
@require_GET
def success(request: MemberRequest) -> HttpResponse:
    """Where Stripe sends the buyer back. Credits the top-up now if the webhook has not yet."""
    session_id = request.GET.get("session_id", "")
    if not session_id:
        raise Http404
    topup = get_team_owned(
        request, TopUp.objects.select_related("team"), checkout_session_id=session_id
    )
    if topup.status != TopUpStatus.PAID:
        try:
            session = gateway.retrieve_checkout_session(session_id)
            topup = services.fulfil_checkout_session(session) or topup
        except (gateway.StripeGatewayError, services.FulfilmentError):
            logger.exception("success page could not confirm a payment", extra={"topup": topup.pk})
    if topup.status == TopUpStatus.PAID:
        messages.success(
            request,
            f"Payment received: {plural.credits(topup.credits)} "
            f"{'was' if topup.credits == 1 else 'were'} added to {topup.team.name}.",
        )
    else:
        messages.info(
            request,
            "Thank you. Your credits are added as soon as Stripe confirms the payment; "
            "this page shows them then.",
        )
    return redirect(_overview_url(topup.team))


def _overview_url(team: Team) -> str:
    return reverse("billing:overview", kwargs={"team_id": team.public_id})


@team_member_required
@require_GET
def ledger_csv(request: MemberRequest) -> StreamingHttpResponse:
    team = request.membership.team
    response = StreamingHttpResponse(_csv_lines(team.pk), content_type="text/csv; charset=utf-8")
    filename = f"unmark-credits-{team.public_id}-{timezone.now():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@csrf_exempt  # Stripe cannot send a CSRF token; the signature check authenticates instead.
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = gateway.parse_webhook(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
    except gateway.WebhookRejected as exc:
        logger.warning("stripe webhook rejected", extra={"reason": str(exc)[:200]})
        return HttpResponse("Rejected: not a valid Stripe event.", status=400)
    if webhooks.receive(event):
        return HttpResponse("OK")
    # Stripe delivers it again later; the stored error says why it failed.
    return HttpResponse("Not processed; retry later.", status=500)


def _overview(request: MemberRequest, form: CheckoutForm, status: int = 200) -> TemplateResponse:
    team = request.membership.team
    paginator = Paginator(LedgerEntry.objects.filter(team=team).history(), LEDGER_PAGE_SIZE)
    # get_page turns a missing, malformed or out-of-range ?page= into the nearest real page.
    page = paginator.get_page(request.GET.get("page"))
    context = {
        "team": team,
        "wallet": ledger.open_wallet(team),
        "can_manage": request.membership.can_manage,
        # A member with a monthly limit is not offered a way round it.
        "can_buy": request.membership.can_buy_credits,
        "limit_left": limit_left(membership=request.membership),
        "managers": Membership.objects.filter(team=team, role__in=MANAGER_ROLES)
        .order_by("user__email")
        .values_list("user__email", flat=True),
        "stripe_enabled": gateway.is_configured(),
        "form": form,
        "packs": services.credit_packs(),
        "credits_per_video": settings.CREDITS_PER_VIDEO,
        "low_alert_videos": (team.low_balance_threshold or 0) // settings.CREDITS_PER_VIDEO,
        "topups": TopUp.objects.filter(team=team)[:TOPUP_HISTORY_SIZE],
        "ledger_page": page,
    }
    template = "billing/overview.html#ledger" if _is_htmx(request) else "billing/overview.html"
    return TemplateResponse(request, template, context, status=status)


def _is_htmx(request: HttpRequest) -> bool:
    details: HtmxDetails = request.htmx  # type: ignore[attr-defined]  # set by HtmxMiddleware
    return bool(details)


class _Echo:
    """csv.writer needs a file; this one hands each line straight to the response."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(team_id: int) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(history_csv.COLUMNS)
    for row in history_csv.rows(team_id):
        yield writer.writerow(row)
