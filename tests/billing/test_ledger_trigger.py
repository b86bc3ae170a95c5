"""On PostgreSQL the database itself keeps the ledger append-only (migration billing 0003)."""

import pytest
from django.db import IntegrityError, connection, models, transaction

from apps.accounts.models import User
from apps.billing import ledger, services
from apps.billing.models import LedgerEntry

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def rows(entry: LedgerEntry) -> models.QuerySet[LedgerEntry]:
    """The entry through a plain queryset: what code bypassing the ledger's guards would use."""
    return models.QuerySet(model=LedgerEntry).filter(pk=entry.pk)


@pytest.fixture
def entry(acme) -> LedgerEntry:
    return ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Acme launch promo")


def test_changing_a_ledger_row_is_refused_by_the_database(entry):
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        rows(entry).update(amount=1_000_000)

    entry.refresh_from_db()
    assert entry.amount == 1000


def test_deleting_a_ledger_row_is_refused_by_the_database(entry):
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        rows(entry).delete()

    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_raw_sql_is_refused_too(entry):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_ledgerentry SET memo = 'edited' WHERE id = %s", [entry.pk])

    entry.refresh_from_db()
    assert entry.memo == "Acme launch promo"


def test_deleting_the_staff_member_who_granted_only_forgets_who_it_was(acme):
    staff = User.objects.create_superuser("ops@unmark.example", "a-long-unusual-pass-1")
    granted = services.grant_by_staff(
        team=acme, credits=500, key="staff:1", staff=staff, reason="Goodwill"
    )

    staff.delete()

    granted.refresh_from_db()
    assert (granted.actor, granted.amount, granted.memo) == (None, 500, "Goodwill")
