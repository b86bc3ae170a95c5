"""API keys, and the stored answers that make a repeated POST harmless (`Idempotency-Key`)."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.http import HttpResponse
from django.utils import timezone


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def live(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A team's key to the API. The key itself is shown once, when it is made; only its public
    prefix (to find it) and a keyed hash of the whole key (to check it) are stored.

    A key acts as the person who made it, in their team: jobs it creates are theirs and count
    against their monthly limit, and it stops working if they leave the team.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    # `um_live_` or `um_test_` and 12 hex digits: how a key is found, and recognised by people.
    prefix = models.CharField(max_length=24, unique=True, editable=False)
    # HMAC-SHA256 of the whole key under API_KEY_HASH_KEY: a leaked table opens nothing.
    digest = models.CharField(max_length=64, editable=False)
    read_only = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def scope(self) -> str:
        return "read only" if self.read_only else "read and write"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class IdempotentRequest(models.Model):
    """The first answer to a POST sent with an `Idempotency-Key`, kept for a day at least.

    The row is inserted before the request runs: the unique (team, key) pair lets exactly one
    of several concurrent requests run; the others find it in progress or replay its answer.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of the method, the path and the body (for uploads: the files' SHA-256s).
    fingerprint = models.CharField(max_length=64)
    # Empty while the first request runs.
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["team", "key"], name="idempotent_one_per_team_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status or 'in progress'})"

    def replay(self) -> HttpResponse:
        response = HttpResponse(self.body, status=self.status, content_type=self.content_type)
        response["Idempotent-Replayed"] = "true"
        return response
