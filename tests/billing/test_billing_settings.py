"""Billing settings are checked in fresh processes, like the rest of the settings."""

from tests.test_settings import SANE_PRODUCTION_ENV, run_manage, show_setting


def test_production_refuses_stripe_without_a_webhook_secret(tmp_path):
    env = {**SANE_PRODUCTION_ENV, "STRIPE_SECRET_KEY": "sk_live_x"}

    result = run_manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "Set STRIPE_WEBHOOK_SECRET" in result.stderr


def test_production_accepts_stripe_with_both_secrets_from_files(tmp_path):
    (tmp_path / "sk").write_text("sk_live_x\n")
    (tmp_path / "whsec").write_text("whsec_x\n")
    env = {
        **SANE_PRODUCTION_ENV,
        "STRIPE_SECRET_KEY_FILE": str(tmp_path / "sk"),
        "STRIPE_WEBHOOK_SECRET_FILE": str(tmp_path / "whsec"),
    }

    result = run_manage("check", "--deploy", "--fail-level", "DEBUG", env=env, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr + result.stdout


def test_credit_packs_come_from_the_environment(tmp_path):
    result = run_manage(
        *show_setting("CREDIT_PACKS"), env={"CREDIT_PACKS": "5000, 2000"}, tmp_path=tmp_path
    )

    assert result.stdout.strip() == "[2000, 5000]", result.stderr


def test_a_pack_below_the_minimum_top_up_stops_start_up(tmp_path):
    result = run_manage("check", env={"CREDIT_PACKS": "10,1000"}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "Every credit pack must be at least 1000 credits." in result.stderr
