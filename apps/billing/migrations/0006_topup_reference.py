# A payment received outside Stripe (a bank transfer), recorded by staff as a paid top-up:
# its reference, one top-up each.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_ops_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="topup",
            name="reference",
            field=models.CharField(
                blank=True,
                help_text="A payment recorded by staff: its bank or invoice reference (one "
                "top-up each).",
                max_length=100,
            ),
        ),
        migrations.AddConstraint(
            model_name="topup",
            constraint=models.UniqueConstraint(
                condition=models.Q(("reference", ""), _negated=True),
                fields=("reference",),
                name="topup_unique_reference",
            ),
        ),
    ]
