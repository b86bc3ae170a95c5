from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_save


class BillingConfig(AppConfig):
    name = "apps.billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from apps.accounts.models import Team

        # Every team has a wallet from its first moment (staff find it in the admin to grant
        # credits). Accounts, the ground floor, cannot open it, so billing does when a team is
        # saved for the first time: an empty row, never a move of money.
        post_save.connect(_open_wallet, sender=Team, dispatch_uid="billing:open-wallet")


def _open_wallet(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    from apps.billing import ledger

    if created:
        ledger.open_wallet(instance)
