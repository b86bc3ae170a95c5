"""Settings are read once, at start-up: each test runs the settings module afresh, in this
process with the environment it is given, or in a fresh process where Django must start on them
(the deploy check, a request, a provider)."""

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ImproperlyConfigured

from tests.provenance.helpers import IssuingCA

ROOT = Path(__file__).resolve().parent.parent


def _operator_signing_keys() -> tuple[str, str]:
    """An operator's C2PA certificate chain and private key, as production is given them."""
    chain, key = IssuingCA.make("Operator CA").issue(name="Unmark signer")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return chain, pem


OPERATOR_CHAIN, OPERATOR_KEY = _operator_signing_keys()

SANE_PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k" * 60 + "-production-like-secret-for-the-deploy-check",
    "ALLOWED_HOSTS": "unmark.example",
    "DATABASE_URL": "postgres://unmark@127.0.0.1:5432/unmark",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "AWS_STORAGE_BUCKET_NAME": "unmark-results",
    "EMAIL_HOST": "smtp.example",
    "PUBLIC_BASE_URL": "https://unmark.example",
    "KIE_API_KEY": "kie-production-key",
    "API_KEY_HASH_KEY": "h" * 64,
    "C2PA_CERT_CHAIN": OPERATOR_CHAIN,
    "C2PA_PRIVATE_KEY": OPERATOR_KEY,
}


def run_manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in SANE_PRODUCTION_ENV}
    clean.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def show_setting(name: str) -> tuple[str, ...]:
    return (
        "shell",
        "--no-imports",
        "-c",
        f"from django.conf import settings; print(settings.{name})",
    )


@pytest.fixture
def start_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """`start_up(env)` runs config/settings.py as start-up runs it, in the environment
    `run_manage` gives a fresh process, and returns its settings; a refusal raises
    ImproperlyConfigured, which stops a real start-up."""

    def settings_for(env: dict[str, str]) -> dict[str, Any]:
        for name in [*SANE_PRODUCTION_ENV, "REDIS_URL"]:
            monkeypatch.delenv(name, raising=False)
        for name, value in {"VAR_DIR": str(tmp_path), **env}.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(ROOT / "config" / "settings.py"))

    return settings_for


@pytest.mark.parametrize(
    "name",
    [
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "AWS_STORAGE_BUCKET_NAME",
        "EMAIL_HOST",
        "API_KEY_HASH_KEY",
    ],
)
def test_production_refuses_to_start_without_what_it_needs(start_up, name):
    env = {k: v for k, v in SANE_PRODUCTION_ENV.items() if k != name}

    with pytest.raises(ImproperlyConfigured, match=f"Set {name}"):
        start_up(env)


def test_production_accepts_the_secret_key_from_a_file(start_up, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SANE_PRODUCTION_ENV["SECRET_KEY"] + "\n")
    env = {k: v for k, v in SANE_PRODUCTION_ENV.items() if k != "SECRET_KEY"}

    settings = start_up({**env, "SECRET_KEY_FILE": str(secret)})

    assert settings["SECRET_KEY"] == SANE_PRODUCTION_ENV["SECRET_KEY"]


def test_production_refuses_debug(start_up):
    with pytest.raises(ImproperlyConfigured, match="DEBUG must stay off in production"):
        start_up({**SANE_PRODUCTION_ENV, "DEBUG": "1"})


def test_a_malformed_boolean_stops_start_up_with_its_name(start_up):
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        start_up({"DEBUG": "maybe"})


def test_the_deploy_check_is_clean_with_a_sane_production_env(tmp_path):
    result = run_manage(
        "check", "--deploy", "--fail-level", "DEBUG", env=SANE_PRODUCTION_ENV, tmp_path=tmp_path
    )

    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_production_makes_email_verification_mandatory(start_up):
    assert start_up(SANE_PRODUCTION_ENV)["ACCOUNT_EMAIL_VERIFICATION"] == "mandatory"


def test_production_asks_staff_for_two_factor_and_binds_keys_to_its_domain(start_up):
    settings = start_up(SANE_PRODUCTION_ENV)

    assert (settings["STAFF_REQUIRE_MFA"], settings["WEBAUTHN_RP_ID"]) == (True, "unmark.example")


def test_local_mode_makes_and_keeps_its_own_secret_key(start_up, tmp_path):
    first = start_up({"DJANGO_ENV": "local"})["SECRET_KEY"]
    second = start_up({"DJANGO_ENV": "local"})["SECRET_KEY"]

    assert len(first) >= 50
    assert first == second
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_healthz_answers_503_when_the_broker_is_down(tmp_path):
    script = (
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from django.test import Client; r = Client().get('/healthz');"
        "print(r.status_code, r.json()['checks']['broker']['status'])"
    )

    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        script,
        env={"DJANGO_ENV": "local", "REDIS_URL": "redis://127.0.0.1:1/0"},
        tmp_path=tmp_path,
    )

    assert result.stdout.split()[-2:] == ["503", "error"], result.stderr


def replicate_in_production(env: dict[str, str], tmp_path: Path) -> list[str]:
    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; from apps.removal.registry import get_provider; "
        "print(s.REPLICATE_SIMULATOR, s.REPLICATE_BASE_URL, "
        "sorted(map(str, get_provider('replicate').accepts)))",
        env={**SANE_PRODUCTION_ENV, **env},
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(maxsplit=2)


def test_production_starts_without_replicate_which_then_takes_nothing(tmp_path):
    assert replicate_in_production({}, tmp_path) == [
        "False",
        "https://api.replicate.com",
        "[]",
    ]


def test_production_takes_the_replicate_token_from_a_file(tmp_path):
    token = tmp_path / "replicate-token"
    token.write_text("r8_production-token\n")

    simulator, _, accepts = replicate_in_production(
        {"REPLICATE_API_TOKEN_FILE": str(token)}, tmp_path
    )

    assert (simulator, accepts) == ("False", "['file']")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REPLICATE_PRICE_PER_SECOND", "cheap", "must be a decimal number"),
        ("REPLICATE_PRICE_PER_SECOND", "-0.001", "must not be negative"),
        ("REPLICATE_MODEL", "sora2-watermark-remover", "must be owner/name"),
    ],
)
def test_a_bad_replicate_setting_stops_start_up_with_its_name(start_up, name, value, message):
    with pytest.raises(ImproperlyConfigured, match=message) as refusal:
        start_up({name: value})

    assert name in str(refusal.value)
