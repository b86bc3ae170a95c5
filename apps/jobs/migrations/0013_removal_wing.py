"""Provider alerts, switches and SWC servers now belong to the removal wing (`apps.removal`,
whose first migration adopts their tables); the pool keeps its own tasks, so a job no longer
carries when its pool task last made progress."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0012_ops_indexes"),
        ("removal", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ProviderAlert"),
                migrations.DeleteModel(name="ProviderSwitch"),
                migrations.DeleteModel(name="SwcServer"),
            ],
        ),
        migrations.RemoveField(model_name="job", name="progress_changed_at"),
    ]
