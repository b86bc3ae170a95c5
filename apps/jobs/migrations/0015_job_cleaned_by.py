"""What customers are told cleaned their video is kept with the job when a provider takes it
(`Job.cleaned_by`), instead of being worked out on every page view from today's configuration
(which could show a server's address). Jobs already sent get the words their provider uses;
timelines that said "Saved 291,034 bytes." say the size as the pages do."""

import re

from django.db import migrations, models
from django.template.defaultfilters import filesizeformat

# The words each provider had when this migration was written (frozen here, as migrations are).
CLEANED_BY = {"swc": "by our GPU servers", "replicate": "on Replicate", "kie": "by Kie.ai"}
SAVED_BYTES = re.compile(r"^Saved ([\d,]+) bytes\.$")
BATCH = 1000


def keep_what_customers_see(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    sent = Job.objects.exclude(state="queued").exclude(submitted_at=None)
    for provider, words in CLEANED_BY.items():
        sent.filter(provider=provider).update(cleaned_by=words)


def say_sizes_as_the_pages_do(apps, schema_editor):
    JobEvent = apps.get_model("jobs", "JobEvent")
    changed = []
    saved = JobEvent.objects.filter(to_state="succeeded", detail__startswith="Saved ")
    for event in saved.only("id", "detail").iterator(chunk_size=BATCH):
        match = SAVED_BYTES.match(event.detail)
        if match is None:
            continue
        size = filesizeformat(int(match[1].replace(",", ""))).replace("\xa0", " ")
        event.detail = f"Saved the clean video ({size})."
        changed.append(event)
        if len(changed) >= BATCH:
            JobEvent.objects.bulk_update(changed, ["detail"])
            changed = []
    JobEvent.objects.bulk_update(changed, ["detail"])


class Migration(migrations.Migration):
    dependencies = [("jobs", "0014_job_credentials")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="cleaned_by",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.RunPython(keep_what_customers_see, migrations.RunPython.noop),
        migrations.RunPython(say_sizes_as_the_pages_do, migrations.RunPython.noop),
    ]
