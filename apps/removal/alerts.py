"""A provider that takes no work (maintenance, paused, out of credits, bad key, or down): an
open `ProviderAlert` holds new work back from it, tells staff, and puts up the banner people
see, until a probe or a task finds the provider back."""

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.removal.base import ProviderUnavailable
from apps.removal.models import ProviderAlert

logger = logging.getLogger("unmark.removal")


def record(provider: str, exc: ProviderUnavailable) -> None:
    """Counts one more refusal on the open alert of this kind, opening it if there is none.

    Every occurrence counts, however many workers report at once: the count is one UPDATE
    with F(), and when two workers open the alert together, the loser counts on the winner's.
    """
    message = str(exc)[:300]
    while True:
        if ProviderAlert.objects.filter(
            provider=provider, kind=exc.kind, resolved_at__isnull=True
        ).update(occurrences=F("occurrences") + 1, last_seen_at=timezone.now(), message=message):
            return
        try:
            with transaction.atomic():
                ProviderAlert.objects.create(provider=provider, kind=exc.kind, message=message)
        except IntegrityError:
            continue  # another worker opened it first: count on it
        logger.error("provider unavailable", extra={"provider": provider, "kind": exc.kind})
        return


def resolve(provider: str) -> None:
    ProviderAlert.objects.filter(provider=provider, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )


def unavailable_providers() -> list[str]:
    """Providers with an open alert: nothing new is sent to them until a probe clears it."""
    return list(
        ProviderAlert.objects.filter(resolved_at__isnull=True)
        .values_list("provider", flat=True)
        .distinct()
    )
