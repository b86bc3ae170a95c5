"""`manage.py kie_status`: is Kie reachable with our key, and how many credits are left?"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.removal.base import ProviderError, ProviderUnavailable
from apps.removal.kie import KIE_CREDITS_PER_VIDEO
from apps.removal.registry import get_provider


class Command(BaseCommand):
    help = "Shows the Kie endpoint in use, whether the API key works and the remaining Kie credits."

    def handle(self, *args: object, **options: object) -> None:
        simulated = " (the local Kie simulator)" if settings.KIE_SIMULATOR else ""
        self.stdout.write(f"Endpoint: {settings.KIE_BASE_URL}{simulated}")
        try:
            credits = get_provider("kie").remaining_credits()
        except ProviderUnavailable as exc:
            if exc.kind == "unauthorized":
                self.stdout.write("API key: rejected")
            raise CommandError(f"Kie refused the request ({exc})") from exc
        except ProviderError as exc:
            raise CommandError(f"Kie could not be asked: {exc}") from exc
        self.stdout.write("API key: works")
        self.stdout.write(
            f"Remaining Kie credits: {credits} (enough for {credits // KIE_CREDITS_PER_VIDEO}"
            " videos)"
        )
