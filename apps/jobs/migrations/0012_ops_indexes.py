# Index-only: the operations page's and /metrics' aggregate queries.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_provider_switch"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                fields=["created_at", "state", "provider"], name="job_created_state_provider"
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                fields=["state", "provider", "created_at"], name="job_state_provider_created"
            ),
        ),
    ]
