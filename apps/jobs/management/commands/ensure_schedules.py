"""`manage.py ensure_schedules`: creates or corrects the app's task schedules (a starting worker
does this too), e.g. right after `migrate` in a release."""

from django.core.management.base import BaseCommand

from apps import taskqueue


class Command(BaseCommand):
    help = "Creates or corrects the task schedules the app needs (the job sweep)."

    def handle(self, *args: object, **options: object) -> None:
        taskqueue.ensure_schedules()
        self.stdout.write("Schedules are up to date.")
