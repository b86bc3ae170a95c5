# Index-only: the operations page's and /metrics' aggregate queries. Built without locking out
# writes on PostgreSQL (apps.schema): a database that runs this migration late, with a large
# table, keeps taking jobs and payments while the indexes are built.

from django.db import migrations, models

from apps.schema import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("billing", "0003_ledger_append_only"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="ledgerentry",
            index=models.Index(fields=["kind", "created_at"], name="ledger_kind_created"),
        ),
        AddIndexConcurrently(
            model_name="topup",
            index=models.Index(fields=["status", "paid_at"], name="topup_status_paid"),
        ),
    ]
