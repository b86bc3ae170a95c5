"""Schedules the job sweep: every minute, no catch-up (Q_CLUSTER), no overlap (its own lock)."""

from django.db import migrations
from django.utils import timezone

SWEEP = "apps.jobs.tasks.sweep"


def schedule_sweep(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        func=SWEEP,
        defaults={
            "name": "Sweep jobs",
            "schedule_type": "I",  # MINUTES
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def unschedule_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=SWEEP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_job_pipeline_fields_provideralert"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule_sweep, unschedule_sweep)]
