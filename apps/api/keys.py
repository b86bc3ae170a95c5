"""Making, checking and revoking API keys.

A key reads `um_live_` (production) or `um_test_` (anywhere else), 12 hex digits that find its
row, then 40 random characters. Only the prefix and an HMAC-SHA256 of the whole key (keyed by
`API_KEY_HASH_KEY`) are stored, compared in constant time.
"""

import functools
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Membership, TeamEventKind, User
from apps.accounts.services import record_team_event
from apps.api.models import ApiKey

LIVE_PREFIX = "um_live_"
TEST_PREFIX = "um_test_"
LOOKUP_HEX_DIGITS = 12
PREFIX_LENGTH = len(LIVE_PREFIX) + LOOKUP_HEX_DIGITS
# `last_used_at` is written at most this often per key: not one write per request.
LAST_USED_PRECISION = timedelta(minutes=1)


def key_kind_prefix() -> str:
    return LIVE_PREFIX if settings.PRODUCTION else TEST_PREFIX


def digest(raw_key: str) -> str:
    return hmac.new(
        settings.API_KEY_HASH_KEY.encode(), raw_key.encode(), hashlib.sha256
    ).hexdigest()


def create_key(*, membership: Membership, name: str, read_only: bool) -> tuple[ApiKey, str]:
    """Makes a key for `membership`'s team, acting as that person; returns it and the raw key,
    which exists nowhere else and must be shown once. Recorded in the team's activity log."""
    prefix = f"{key_kind_prefix()}{secrets.token_hex(LOOKUP_HEX_DIGITS // 2)}"
    raw_key = f"{prefix}{secrets.token_urlsafe(30)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            team=membership.team,
            name=name,
            prefix=prefix,
            digest=digest(raw_key),
            read_only=read_only,
            created_by=membership.user,
        )
        record_team_event(
            team=membership.team,
            kind=TeamEventKind.API_KEY_CREATED,
            actor=membership.user,
            detail=f"{name} ({prefix}…, {key.scope})",
        )
    return key, raw_key


def revoke_key(*, key: ApiKey, actor: User) -> bool:
    """Stops the key at once. False if it was already revoked (nothing is recorded twice)."""
    with transaction.atomic():
        now = timezone.now()
        revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=actor
        )
        if not revoked:
            return False
        key.revoked_at, key.revoked_by = now, actor
        record_team_event(
            team=key.team,
            kind=TeamEventKind.API_KEY_REVOKED,
            actor=actor,
            detail=f"{key.name} ({key.prefix}…)",
        )
    return True


class Principal:
    """Who a request acts as: the key, and its maker's membership of the key's team (read
    only when a request needs it: creating jobs, uploading)."""

    def __init__(self, key: ApiKey) -> None:
        self.key = key

    @property
    def team_id(self) -> int:
        return self.key.team_id

    @functools.cached_property
    def membership(self) -> Membership:
        membership = (
            _makers_membership(team_id=self.key.team_id, user_id=self.key.created_by_id)
            .select_related("team", "user")
            .first()
        )
        if membership is None:  # they left the team a moment ago
            raise KeyStopped
        return membership


class KeyStopped(Exception):
    """The key's maker left the team (or the team was deleted) while the request ran."""


def _makers_membership(*, team_id: Any, user_id: Any) -> "QuerySet[Membership]":
    return Membership.objects.active().filter(team_id=team_id, user_id=user_id)


def _live_keys() -> "QuerySet[ApiKey]":
    """Keys that work: not revoked, and their maker still in the (not deleted) team."""
    maker_in_team = _makers_membership(
        team_id=OuterRef("team_id"), user_id=OuterRef("created_by_id")
    )
    return ApiKey.objects.live().filter(Exists(maker_in_team))


def find_principal(raw_key: str) -> Principal | None:
    """The working key this is; None for anything else (unknown, wrong secret, revoked, its
    maker no longer in the team, the team deleted). One query."""
    if not raw_key.startswith((LIVE_PREFIX, TEST_PREFIX)) or len(raw_key) > 200:
        return None
    key = _live_keys().filter(prefix=raw_key[:PREFIX_LENGTH]).first()
    if key is None or not hmac.compare_digest(key.digest, digest(raw_key)):
        return None
    _note_use(key)
    return Principal(key)


def principal_for_key(key_id: int) -> Principal | None:
    """The principal of a working key found by id (a signed upload ticket names its key)."""
    key = _live_keys().filter(pk=key_id).first()
    return Principal(key) if key else None


def _note_use(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at and now - key.last_used_at < LAST_USED_PRECISION:
        return
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    key.last_used_at = now


def principal_of(request: HttpRequest) -> Principal | None:
    """The request's principal from its `Authorization: Bearer <key>` header, looked up once
    per request (the guard and Ninja's auth both ask)."""
    if not hasattr(request, "_api_principal"):
        scheme, _, raw_key = request.headers.get("Authorization", "").partition(" ")
        found = find_principal(raw_key.strip()) if scheme.lower() == "bearer" else None
        request._api_principal = found  # type: ignore[attr-defined]
    principal: Principal | None = request._api_principal  # type: ignore[attr-defined]
    return principal
