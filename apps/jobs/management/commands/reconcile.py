from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import ngettext

from apps.billing.models import LedgerEntry, Wallet
from apps.jobs.reconcile import find_drift


class Command(BaseCommand):
    help = (
        "Checks every wallet against its ledger entries, every hold's settle, every ended job's "
        "settle and every paid top-up's credit. Prints a summary; exits non-zero on any drift."
    )

    def handle(self, *args: object, **options: object) -> None:
        problems = find_drift()
        wallets, entries = Wallet.objects.count(), LedgerEntry.objects.count()
        summary = (
            ngettext("%(count)d wallet", "%(count)d wallets", wallets) % {"count": wallets}
            + ", "
            + ngettext("%(count)d entry", "%(count)d entries", entries) % {"count": entries}
        )
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            found = ngettext("%(count)d problem found.", "%(count)d problems found.", len(problems))
            raise CommandError(f"{summary}, {found % {'count': len(problems)}}")
        self.stdout.write(self.style.SUCCESS(f"{summary}, OK"))
