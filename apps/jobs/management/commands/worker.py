"""`manage.py worker`: a task worker cluster (django-q2), as production and `make run` run it."""

from django.core.management.base import BaseCommand, CommandError

from apps.jobs import queue


class Command(BaseCommand):
    help = (
        "Runs a worker cluster: brings schedules up to date, starts a poller at once, and "
        "stops (exit 1) if the database cannot be reached."
    )

    def handle(self, *args: object, **options: object) -> None:
        try:
            status = queue.run_worker()
        except queue.DatabaseUnreachable as exc:
            raise CommandError(str(exc)) from exc
        if status:
            raise CommandError("The worker stopped: the database is unreachable.")
