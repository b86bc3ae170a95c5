"""Outgoing webhooks: a team's endpoints and every message sent to them.

An `Endpoint` is a URL a team's owners or admins registered, the events it wants and the
secret its messages are signed with (the Standard Webhooks scheme). A `Delivery` is one
message to one endpoint, written in the same transaction as the change it announces (so a
rolled-back change announces nothing) and sent later by a worker, retried on a schedule until
the endpoint answers 2xx or the schedule runs out.
"""

import base64
import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class EventType(models.TextChoices):
    # Labels are what people choose from, in plain words.
    JOB_SUCCEEDED = "job.succeeded", "A video is done"
    JOB_FAILED = "job.failed", "A video failed (its credits were refunded)"
    BATCH_FINISHED = "batch.finished", "Every video of one submission has ended"
    CREDITS_LOW = "credits.low", "Available credits fell below the team's alert threshold"


# Sent only when someone asks for it ("Send a test event"), whatever the endpoint subscribed to.
TEST_EVENT = "webhook.test"

# When each attempt is made, counted from the failure of the one before (Svix's schedule):
# at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h — eight attempts over about 33 h.
RETRY_SCHEDULE = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    return f"msg_{secrets.token_hex(16)}"


class Endpoint(models.Model):
    """Where a team wants to hear about its videos and credits."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(
        "accounts.Team", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=500)
    events = models.JSONField(default=list, help_text="Event types this endpoint receives.")
    # Messages are signed with `secret`; after a rotation also with `previous_secret` until
    # `previous_secret_until`, so the receiver can switch secrets without losing a message.
    secret = models.CharField(max_length=100, default=new_secret)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Since when every attempt has failed (None while it answers): after
    # WEBHOOK_DISABLE_AFTER_DAYS of it the endpoint is turned off and its team told.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]

    def __str__(self) -> str:
        return self.url

    def get_absolute_url(self) -> str:
        return reverse(
            "webhooks:endpoint",
            kwargs={"team_id": self.team.public_id, "endpoint_id": self.public_id},
        )

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.events

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets a message sent now is signed with: the current one, and the previous
        one while the rotation overlap lasts."""
        now = now or timezone.now()
        found = [self.secret]
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            found.append(self.previous_secret)
        return found

    @property
    def event_labels(self) -> list[str]:
        return [EventType(event).label for event in self.events if event in EventType.values]


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


# The lease of a delivery the sweep handed to the queue, not yet taken by a worker: any worker
# may claim it, and the sweep hands it out again only once this lease has run out (a lost task).
HANDED_OUT = "handed-out"


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def due(self, now: datetime) -> "DeliveryQuerySet":
        """Waiting, due, and not held by anyone (a worker sending it, or the queue)."""
        return self.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now).filter(
            models.Q(lease_until__isnull=True) | models.Q(lease_until__lt=now)
        )

    def claimable(self, now: datetime) -> "DeliveryQuerySet":
        """What a worker may start sending: due, or handed to the queue and waiting for it."""
        free = models.Q(lease_until__isnull=True) | models.Q(lease_until__lt=now)
        return self.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now).filter(
            free | models.Q(lease_token=HANDED_OUT)
        )


class Delivery(models.Model):
    """One message to one endpoint, and how sending it went (the endpoint's delivery log)."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The `webhook-id` header: the same on every attempt, and on a resend, so a receiver
    # recognises a message it already handled.
    message_id = models.CharField(max_length=40, default=new_message_id, db_index=True)
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The worker sending it holds the lease: one sender at a time, and a crashed one's lease
    # runs out so another takes over.
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.TextField(blank=True)
    # When the event happened (the envelope's timestamp; kept by a resend), and when this
    # delivery was made (the log's order).
    occurred_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id} ({self.state})"

    def body(self) -> str:
        """The JSON sent: the Standard Webhooks envelope (type, timestamp, data). The same
        bytes on every attempt; keys sorted so it never depends on how the payload was built."""
        envelope: dict[str, Any] = {
            "type": self.event_type,
            "timestamp": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "data": self.payload,
        }
        return json.dumps(envelope, sort_keys=True, separators=(",", ":"))

    @property
    def badge_class(self) -> str:
        if self.state == DeliveryState.SUCCEEDED:
            return "badge-ok"
        if self.state == DeliveryState.FAILED:
            return "badge-bad"
        return "badge-accent"

    @property
    def outcome(self) -> str:
        """What the last attempt got, in plain words."""
        if self.attempts == 0:
            return "Not sent yet."
        if self.last_status is not None:
            return f"Answered {self.last_status}."
        return self.last_error or "No answer."
