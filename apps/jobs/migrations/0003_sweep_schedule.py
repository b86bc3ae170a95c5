"""Once scheduled the job sweep with a data migration; schedules now live with the task queue
(`apps.jobs.queue.ensure_schedules`, run whenever a worker cluster starts), so this migration
does nothing and no longer depends on django-q's migrations. Kept so histories stay valid."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("jobs", "0002_job_pipeline_fields_provideralert")]

    operations = []
