import secrets
import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTED = "submitted", "Sent to Kie"
    PROCESSING = "processing", "Removing watermark"
    DOWNLOADING = "downloading", "Saving"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"


# States a job never leaves (but for EXPIRED, which only a succeeded job enters).
FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED})
IN_FLIGHT_STATES = frozenset(
    {JobState.QUEUED, JobState.SUBMITTED, JobState.PROCESSING, JobState.DOWNLOADING}
)


def new_callback_token() -> str:
    return secrets.token_urlsafe(24)


class Job(models.Model):
    """One Sora video sent for watermark removal, paid for by its team's credits."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
    )
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries"
    )
    source_url = models.CharField(max_length=500)

    provider = models.CharField(max_length=20)
    task_id = models.CharField(max_length=100, blank=True, db_index=True)
    # Secret part of this job's callback URL: a callback names its job without revealing it.
    callback_token = models.CharField(max_length=64, unique=True, default=new_callback_token)

    state = models.CharField(max_length=12, choices=JobState.choices, default=JobState.QUEUED)
    credits = models.PositiveIntegerField()
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times the worker has tried to send this job to the provider."
    )
    checks = models.PositiveIntegerField(
        default=0, help_text="Times the provider has been asked for this job's status."
    )
    next_check_at = models.DateTimeField(null=True, blank=True)

    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)

    result_file = models.FileField(upload_to="results/%Y/%m/", max_length=200, blank=True)
    result_size = models.BigIntegerField(null=True, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    provider_cost_ms = models.PositiveIntegerField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When the stored result is deleted."
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["team", "-created_at"], name="job_team_recent"),
            models.Index(fields=["state", "next_check_at"], name="job_state_due"),
        ]

    def __str__(self) -> str:
        return f"Job {self.public_id} ({self.state})"


class JobEvent(models.Model):
    """One step in a job's timeline: every state change, with when and why."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=12, choices=JobState.choices, blank=True)
    to_state = models.CharField(max_length=12, choices=JobState.choices)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state or '∅'} → {self.to_state}"
