"""API fixtures: keys made the way the app makes them, and a client that sends one."""

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import Membership, Team, User
from apps.api.keys import create_key

GOOD_LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"
OTHER_LINK = "https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef"


def link(number: int) -> str:
    return f"https://sora.chatgpt.com/p/s_{number:032x}"


class ApiClient:
    """Django's test client speaking to /api/v1/ with an API key."""

    def __init__(self, key: str) -> None:
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", params)

    def post(self, path: str, body: object = None, *, idempotency_key: str = "", **extra: Any):
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.client.post(
            f"/api/v1{path}",
            json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers=headers,
            **extra,
        )

    def post_files(self, path: str, data: dict[str, Any], **extra: Any):
        return self.client.post(f"/api/v1{path}", data, **extra)


def membership(user: User, team: Team) -> Membership:
    return Membership.objects.select_related("team", "user").get(user=user, team=team)


def key_for(user: User, team: Team, *, read_only: bool = False, name: str = "CI") -> str:
    _, raw_key = create_key(membership=membership(user, team), name=name, read_only=read_only)
    return raw_key


@pytest.fixture
def acme_api(acme: Team, alice: User) -> ApiClient:
    """A read-and-write key of Acme, made by Alice (its owner)."""
    return ApiClient(key_for(alice, acme))


@pytest.fixture
def uploads_stack(settings, media_storage: Path, tmp_path: Path, files_provider: None) -> Path:
    """Local storage in a fresh folder, temporary files in another, a provider for files."""
    settings.DOWNLOAD_TEMP_DIR = settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    return media_storage
