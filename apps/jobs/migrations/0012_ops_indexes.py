# Index-only: the operations page's and /metrics' aggregate queries. Built without locking out
# writes on PostgreSQL (apps.schema): a database that runs this migration late, with a large
# table, keeps taking jobs and payments while the indexes are built.

from django.db import migrations, models

from apps.schema import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0011_provider_switch"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                fields=["created_at", "state", "provider"], name="job_created_state_provider"
            ),
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                fields=["state", "provider", "created_at"], name="job_state_provider_created"
            ),
        ),
    ]
