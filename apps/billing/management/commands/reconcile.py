from django.core.management.base import BaseCommand, CommandError

from apps.billing.models import LedgerEntry, Wallet
from apps.billing.reconcile import find_drift


class Command(BaseCommand):
    help = (
        "Checks every wallet against its ledger entries, every hold's settle and every paid "
        "top-up's credit. Prints a summary; exits non-zero on any drift."
    )

    def handle(self, *args: object, **options: object) -> None:
        problems = find_drift()
        summary = f"{Wallet.objects.count()} wallets, {LedgerEntry.objects.count()} entries"
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"{summary}, {len(problems)} problem(s) found.")
        self.stdout.write(self.style.SUCCESS(f"{summary}, OK"))
