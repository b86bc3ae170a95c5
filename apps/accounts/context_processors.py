from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.accounts.access import page_membership
from apps.accounts.models import Membership


def teams(request: HttpRequest) -> dict[str, object]:
    """The team the page is about and the person's other teams, for the header's switcher."""
    user = request.user
    if not user.is_authenticated:
        return {}
    return {
        "current_membership": page_membership(request),
        "user_memberships": SimpleLazyObject(
            lambda: list(Membership.objects.active().select_related("team").filter(user=user))
        ),
    }
