"""The jobs' half of `manage.py reconcile`: every job that ended had its hold settled (captured
or released). Billing checks the money's own half (`apps.billing.reconcile`). Read-only."""

from collections.abc import Iterator

from django.db.models import Exists, OuterRef

from apps.billing import reconcile as money
from apps.billing.models import SETTLE_KINDS, EntryKind, LedgerEntry
from apps.jobs.models import FINAL_STATES, Job


def find_drift() -> list[str]:
    """One line per problem found, money's and jobs'; empty when everything adds up."""
    return [*money.find_drift(), *_final_jobs_settled()]


def _final_jobs_settled() -> Iterator[str]:
    held = LedgerEntry.objects.filter(job_id=OuterRef("pk"), kind=EntryKind.HOLD)
    settled = LedgerEntry.objects.filter(job_id=OuterRef("pk"), kind__in=SETTLE_KINDS)
    unsettled = Job.objects.filter(Exists(held), ~Exists(settled), state__in=FINAL_STATES)
    for job in unsettled.only("pk", "state"):
        yield f"Job {job.pk} is {job.state} but its hold was never captured or released."
