"""Kie settings, read in fresh processes as at start-up."""

import os

import pytest

from tests.test_settings import SANE_PRODUCTION_ENV, run_manage

KIE_SETTINGS = (
    "KIE_SIMULATOR",
    "KIE_BASE_URL",
    "KIE_UPLOAD_METHOD",
    "PUBLIC_BASE_URL",
)


@pytest.fixture(autouse=True)
def _no_inherited_kie_variables(monkeypatch):
    # The runner's own Kie variables must not leak into what is being checked.
    for name in list(os.environ):
        if name.startswith("KIE_") or name in ("PUBLIC_BASE_URL", "PORT"):
            monkeypatch.delenv(name)


def kie_settings(tmp_path, **env: str) -> dict[str, str]:
    script = "from django.conf import settings\n" + "\n".join(
        f"print({name!r}, repr(settings.{name}))" for name in (*KIE_SETTINGS, "KIE_API_KEY")
    )
    result = run_manage("shell", "--no-imports", "-c", script, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def test_production_refuses_to_start_without_a_kie_key(tmp_path):
    env = {k: v for k, v in SANE_PRODUCTION_ENV.items() if k != "KIE_API_KEY"}

    result = run_manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "Set KIE_API_KEY" in result.stderr


def test_production_talks_to_kie(tmp_path):
    found = kie_settings(tmp_path, **SANE_PRODUCTION_ENV)

    assert found["KIE_SIMULATOR"] == "False"
    assert found["KIE_BASE_URL"] == "'https://api.kie.ai'"
    assert found["KIE_API_KEY"] == "'kie-production-key'"
    assert found["PUBLIC_BASE_URL"] == "'https://unmark.example'"


def test_a_local_run_without_a_key_uses_the_simulator_and_calls_back_on_loopback(tmp_path):
    found = kie_settings(tmp_path, DJANGO_ENV="local", PORT="8100", KIE_SIMULATOR_PORT="9876")

    assert found["KIE_SIMULATOR"] == "True"
    assert found["KIE_BASE_URL"] == "'http://127.0.0.1:9876'"
    assert found["KIE_API_KEY"] == "'simulator-key'"
    assert found["PUBLIC_BASE_URL"] == "'http://127.0.0.1:8100'"


def test_a_local_run_with_a_key_talks_to_the_configured_kie(tmp_path):
    found = kie_settings(
        tmp_path,
        DJANGO_ENV="local",
        KIE_API_KEY="kie-dev-key",
        KIE_BASE_URL="https://kie.proxy.example/",
        KIE_UPLOAD_METHOD="oss",
    )

    assert found["KIE_SIMULATOR"] == "False"
    assert found["KIE_BASE_URL"] == "'https://kie.proxy.example'"
    assert found["KIE_UPLOAD_METHOD"] == "'oss'"


def test_the_test_suite_gets_no_public_address_unless_given_one(tmp_path):
    found = kie_settings(tmp_path, DJANGO_ENV="test")

    assert found["PUBLIC_BASE_URL"] == "''"
    assert found["KIE_SIMULATOR"] == "True"


def test_an_unknown_upload_method_stops_start_up(tmp_path):
    result = run_manage("check", env={"KIE_UPLOAD_METHOD": "ftp"}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "KIE_UPLOAD_METHOD='ftp' must be one of s3, oss" in result.stderr
