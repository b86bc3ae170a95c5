"""deploy/compose.yaml and deploy/.env.example, read as Docker Compose reads them (no Docker
engine runs here): the services and their order, and an example environment that production
settings accept — `check --deploy` included."""

import ast
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from tests.test_settings import SANE_PRODUCTION_ENV, run_manage

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
APP_SERVICES = ("migrate", "web", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def example_env() -> dict[str, str]:
    """deploy/.env.example as Compose reads an env file: KEY=VALUE lines, `#` comments."""
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """What an app container gets: its env file (the example here), then `environment`."""
    assert service["env_file"] == ".env"
    return {**example_env(), **service.get("environment", {})}


def names_settings_insist_on() -> set[str]:
    """Every `env_required("NAME")` in config/settings.py."""
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    return {
        str(node.args[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "env_required"
        and isinstance(node.args[0], ast.Constant)
    }


def test_every_variable_production_requires_is_in_the_example():
    required = set(SANE_PRODUCTION_ENV) | names_settings_insist_on()

    assert required <= set(example_env()), required - set(example_env())
    assert example_env()["DJANGO_ENV"] == "production"


def test_the_example_holds_no_secret_only_places_for_them():
    example = example_env()

    secrets = ("SECRET_KEY", "KIE_API_KEY", "AWS_SECRET_ACCESS_KEY", "POSTGRES_PASSWORD")
    for name in (*secrets, "C2PA_PRIVATE_KEY", "C2PA_CERT_CHAIN"):
        assert example[name] == "", name
    assert ":PASSWORD@" in example["DATABASE_URL"]


def test_the_compose_environment_passes_production_checks_once_secrets_are_filled_in(
    services, tmp_path
):
    for name in APP_SERVICES:
        env = {
            key: value or SANE_PRODUCTION_ENV.get(key) or f"filled-in-{key.lower()}-" + "x" * 50
            for key, value in environment_of(services[name]).items()
        }

        result = run_manage(
            "check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path
        )

        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_without_its_secret_key_the_example_environment_refuses_to_start(services, tmp_path):
    env = {key: value for key, value in environment_of(services["web"]).items() if value}

    result = run_manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_every_variable_compose_interpolates_is_in_the_example():
    text = (DEPLOY / "compose.yaml").read_text()
    # ${NAME}, ${NAME:-default}, ${NAME:?message}; $$NAME is the container shell's own.
    used = dict(re.findall(r"(?<!\$)\$\{(\w+)(:[-?][^}]*)?\}", text))
    without_default = {name for name, fallback in used.items() if not fallback.startswith(":-")}

    assert without_default <= set(example_env()), without_default - set(example_env())


def test_web_and_workers_start_after_migrations_the_broker_and_the_bucket(services):
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
            "bucket": {"condition": "service_completed_successfully"},
        }
    assert services["bucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}


def test_every_service_waited_on_as_healthy_has_a_health_check(services):
    waited_on = {
        target
        for service in services.values()
        for target, rule in service.get("depends_on", {}).items()
        if rule["condition"] == "service_healthy"
    }

    assert waited_on == {"postgres", "redis", "minio"}
    for name in waited_on:
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_the_web_is_checked_on_healthz_and_workers_are_not_probed_as_web_servers(services):
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "command" not in services["web"]  # the image's gunicorn
    for name in ("migrate", "worker"):
        assert services[name]["healthcheck"] == {"disable": True}


def test_two_worker_clusters_run_the_worker_command_and_may_finish_a_pollers_run(services):
    worker = services["worker"]

    assert worker["command"] == ["python", "manage.py", "worker"]
    assert worker["deploy"]["replicas"] == 2
    grace = int(worker["stop_grace_period"].removesuffix("s"))
    assert grace > settings.POLLER_RUN_SECONDS


def test_each_worker_cluster_serves_its_metrics_on_the_compose_network_only(services):
    worker = services["worker"]
    environment = environment_of(worker)

    # Its processes share a folder that starts empty at each start.
    assert environment["PROMETHEUS_MULTIPROC_DIR"] in worker["tmpfs"]
    assert environment["WORKER_METRICS_ADDRESS"] == "0.0.0.0"  # noqa: S104 — reachable by Prometheus
    assert worker["expose"] == [environment["WORKER_METRICS_PORT"]]
    assert "ports" not in worker  # no token: never published on the host
    assert environment["SWC_SERVERS"] == "http://swc:5344"


def test_app_services_share_one_image_and_the_swc_server_has_a_gpu(services):
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    assert (DEPLOY / services["web"]["build"]["context"] / "Dockerfile").exists()

    swc = services["swc"]
    [device] = swc["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert (DEPLOY / swc["build"]["context"] / "Dockerfile").exists()
    assert environment_of(services["worker"])["SWC_SERVERS"] == "http://swc:5344"
    assert "5344" in " ".join(swc["healthcheck"]["test"])


def test_the_images_build_step_loads_production_settings(tmp_path):
    """The Dockerfile collects static files with production settings and placeholder values:
    those must be every value settings insist on, or `docker build` fails."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [step] = [line for line in dockerfile.splitlines() if "collectstatic" in line]
    words = shlex.split(step.removeprefix("RUN "))
    env = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", word))
    env.pop("VAR_DIR")  # run_manage gives a temporary one

    result = run_manage("collectstatic", "--noinput", "--dry-run", env=env, tmp_path=tmp_path)

    assert env["DJANGO_ENV"] == "production"
    assert result.returncode == 0, result.stderr
    assert "static files copied" in result.stdout
