"""The removal wing's tables. Provider alerts, switches and SWC servers moved here from jobs
(whose migrations made them): this adopts the existing tables into this app's state, then
renames them; the pool's tasks are new (the pool used to count its load from the jobs)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = {
    "ProviderAlert": "provideralert",
    "ProviderSwitch": "providerswitch",
    "SwcServer": "swcserver",
}


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("jobs", "0012_ops_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ProviderAlert",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("provider", models.CharField(max_length=20)),
                        ("kind", models.CharField(max_length=20)),
                        ("message", models.CharField(max_length=300)),
                        ("occurrences", models.PositiveIntegerField(default=1)),
                        ("first_seen_at", models.DateTimeField(auto_now_add=True)),
                        ("last_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("resolved_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "ordering": ["-last_seen_at"],
                        "db_table": "jobs_provideralert",
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("resolved_at__isnull", True)),
                                fields=("provider", "kind"),
                                name="provideralert_one_open_per_kind",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ProviderSwitch",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("provider", models.CharField(max_length=20, unique=True)),
                        ("enabled", models.BooleanField(default=True)),
                        ("reason", models.CharField(max_length=300)),
                        ("changed_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "changed_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "provider switch",
                        "verbose_name_plural": "provider switches",
                        "ordering": ["provider"],
                        "db_table": "jobs_providerswitch",
                    },
                ),
                migrations.CreateModel(
                    name="SwcServer",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("url", models.CharField(max_length=200, unique=True)),
                        ("api_prefix", models.CharField(blank=True, max_length=20, null=True)),
                        ("healthy", models.BooleanField(default=True)),
                        ("down_reason", models.CharField(blank=True, max_length=300)),
                        ("down_since", models.DateTimeField(blank=True, null=True)),
                        ("failures", models.PositiveIntegerField(default=0)),
                        ("next_probe_at", models.DateTimeField(blank=True, null=True)),
                        ("booked_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_count", models.PositiveIntegerField(default=0)),
                    ],
                    options={
                        "verbose_name": "SWC server",
                        "ordering": ["id"],
                        "db_table": "jobs_swcserver",
                    },
                ),
            ],
        ),
        *[migrations.AlterModelTable(name=name, table=None) for name in MOVED],
        migrations.CreateModel(
            name="PoolTask",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("reference", models.CharField(db_index=True, max_length=64)),
                ("task_id", models.CharField(blank=True, max_length=100)),
                ("booked_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("alive_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("progress", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("progress_changed_at", models.DateTimeField(blank=True, null=True)),
                ("running_since", models.DateTimeField(blank=True, null=True)),
                ("ended_at", models.DateTimeField(blank=True, null=True)),
                (
                    "outcome",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("finished", "Finished"),
                            ("error", "Error"),
                            ("lost", "Lost"),
                            ("not_sent", "Not Sent"),
                            ("forgotten", "Forgotten"),
                        ],
                        max_length=12,
                    ),
                ),
                ("lost_reason", models.CharField(blank=True, max_length=300)),
                ("gpu_ms", models.PositiveIntegerField(blank=True, null=True)),
                (
                    "server",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tasks",
                        to="removal.swcserver",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
                "indexes": [
                    models.Index(fields=["server", "ended_at"], name="pooltask_server_open")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("task_id", ""), _negated=True),
                        fields=("task_id",),
                        name="pooltask_one_per_swc_task",
                    )
                ],
            },
        ),
    ]
