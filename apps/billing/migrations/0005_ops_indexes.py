# Index-only: the operations page's and /metrics' aggregate queries.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_ledger_append_only"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(fields=["kind", "created_at"], name="ledger_kind_created"),
        ),
        migrations.AddIndex(
            model_name="topup",
            index=models.Index(fields=["status", "paid_at"], name="topup_status_paid"),
        ),
    ]
