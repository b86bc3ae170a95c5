# The operations page's daily roll-ups (apps.ops.rollups): new, empty tables.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="RolledDay",
            fields=[
                ("day", models.DateField(primary_key=True, serialize=False)),
                ("topups", models.PositiveIntegerField(default=0)),
                ("topup_cents", models.BigIntegerField(default=0)),
                ("clawback_micros", models.BigIntegerField(default=0)),
                ("used_credits", models.BigIntegerField(default=0)),
                ("rolled_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="DayJobs",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("provider", models.CharField(max_length=20)),
                ("state", models.CharField(max_length=12)),
                ("failure_code", models.CharField(blank=True, max_length=40)),
                ("server", models.CharField(blank=True, max_length=200)),
                ("jobs", models.PositiveIntegerField()),
                ("cost_micros", models.BigIntegerField(default=0)),
                ("priced", models.PositiveIntegerField(default=0)),
                ("unpriced", models.PositiveIntegerField(default=0)),
                ("signed", models.PositiveIntegerField(default=0)),
                ("signing_failed", models.PositiveIntegerField(default=0)),
                ("failure_example", models.CharField(blank=True, max_length=300)),
                (
                    "day",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="groups",
                        to="ops.rolledday",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "day jobs",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("day", "provider", "state", "failure_code", "server"),
                        name="dayjobs_one_group",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="DayDurations",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("provider", models.CharField(max_length=20)),
                ("waits", models.BinaryField()),
                ("works", models.BinaryField()),
                (
                    "day",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="durations",
                        to="ops.rolledday",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "day durations",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("day", "provider"), name="daydurations_one_provider"
                    )
                ],
            },
        ),
    ]
