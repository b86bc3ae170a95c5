import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.billing.welcome import onboard_new_user

LOCAL_ADMIN_EMAIL = "admin@unmark.localhost"


class Command(BaseCommand):
    help = "Creates the local staff account on the first local run and prints its password once."

    def handle(self, *args: object, **options: object) -> None:
        if settings.PRODUCTION:
            raise CommandError("Refusing to create a default staff account in production.")
        if User.objects.filter(email=LOCAL_ADMIN_EMAIL).exists():
            self.stdout.write(
                f"Staff account: {LOCAL_ADMIN_EMAIL} (its password was printed on the first run;"
                " `python manage.py changepassword` sets a new one)"
            )
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(LOCAL_ADMIN_EMAIL, password)
        onboard_new_user(user=user)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created a local staff account — email: {LOCAL_ADMIN_EMAIL}  password: {password}"
                "\nThis password is shown only now."
            )
        )
