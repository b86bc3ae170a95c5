"""The operations page's daily roll-ups: what `apps.ops.figures` would count for one closed UTC
day, kept by the workers (`apps.ops.rollups`) so that a range of days reads a few rows per day
instead of every job, ledger entry and top-up in it. Today is always counted from live rows.

They hold nothing the live tables do not: dropping them all and running `manage.py
rollup_ops --rebuild` gives the same rows back.
"""

from typing import ClassVar

from django.db import models


class RolledDay(models.Model):
    """One UTC day that is rolled up (its `DayJobs` rows are complete, even when there are
    none), with the day's money: top-ups by when they were paid, ledger entries by when they
    were written."""

    day = models.DateField(primary_key=True)
    topups = models.PositiveIntegerField(default=0)
    topup_cents = models.BigIntegerField(default=0)
    clawback_micros = models.BigIntegerField(default=0)
    used_credits = models.BigIntegerField(default=0)
    # When the roll-up started to read: changes to jobs after this make the day due again.
    rolled_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Roll-up of {self.day}"


class DayJobs(models.Model):
    """The jobs created on one day that share a provider, a state, a failure code and, for
    those that succeeded, the machine that cleaned them, as the page counts them."""

    day = models.ForeignKey(RolledDay, on_delete=models.CASCADE, related_name="groups")
    provider = models.CharField(max_length=20)
    state = models.CharField(max_length=12)
    failure_code = models.CharField(max_length=40, blank=True)
    server = models.CharField(max_length=200, blank=True)
    jobs = models.PositiveIntegerField()
    cost_micros = models.BigIntegerField(default=0)
    priced = models.PositiveIntegerField(default=0)
    unpriced = models.PositiveIntegerField(default=0)
    signed = models.PositiveIntegerField(default=0)
    signing_failed = models.PositiveIntegerField(default=0)
    failure_example = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "day jobs"
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["day", "provider", "state", "failure_code", "server"],
                name="dayjobs_one_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.jobs} {self.state} on {self.provider}, {self.day_id}"


class DayDurations(models.Model):
    """The waits and processing times (seconds) of the videos created on one day on one
    provider that were sent and ended, sorted, as 8-byte floats. Percentiles are not sums:
    keeping the values themselves (16 bytes a video) gives the same percentiles as the live
    rows to the last digit, and reads back in microseconds."""

    day = models.ForeignKey(RolledDay, on_delete=models.CASCADE, related_name="durations")
    provider = models.CharField(max_length=20)
    waits = models.BinaryField()
    works = models.BinaryField()

    class Meta:
        verbose_name_plural = "day durations"
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["day", "provider"], name="daydurations_one_provider"),
        ]

    def __str__(self) -> str:
        return f"Durations on {self.provider}, {self.day_id}"
