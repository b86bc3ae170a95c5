from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.accounts.access import page_membership
from apps.billing.models import Wallet


def balance(request: HttpRequest) -> dict[str, object]:
    """The wallet of the team the page is about, for the header chip and the dispute banner:
    one query, if used."""
    # Signed-out pages (a password reset that never arrives) name the contact too.
    if not request.user.is_authenticated:
        return {"support_email": settings.SUPPORT_EMAIL}

    def current_wallet() -> Wallet | None:
        membership = page_membership(request)
        if membership is None:
            return None
        return Wallet.objects.filter(team_id=membership.team_id).select_related("team").first()

    return {
        "team_wallet": SimpleLazyObject(current_wallet),
        "support_email": settings.SUPPORT_EMAIL,
    }
