"""The simulator commands, `kie_status` and `make run`'s supervisor, run as commands."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.core.management import CommandError, call_command
from prometheus_client.parser import text_string_to_metric_families

from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, str(ROOT / "manage.py")]


def command_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: SQLite under tmp_path, no Redis, no Kie key (so: the simulator)."""
    ignored = ("DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "PORT")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ignored and not k.startswith(("KIE_", "SWC_", "REPLICATE_"))
    }
    return {**env, "DJANGO_ENV": "test", "VAR_DIR": str(tmp_path), **extra}


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        return
    pytest.fail(f"{url} never answered:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes], signum: int) -> int:
    if process.poll() is None:
        process.send_signal(signum)
    return process.wait(timeout=30)


def test_the_simulator_command_refuses_a_public_address():
    with pytest.raises(CommandError, match="loopback only"):
        call_command("kie_simulator", "--host", "0.0.0.0", "--port", "0")  # noqa: S104


def test_the_swc_simulator_command_refuses_a_public_address():
    with pytest.raises(CommandError, match="loopback only"):
        call_command("swc_simulator", "--host", "0.0.0.0", "--port", "0")  # noqa: S104


def test_the_swc_simulator_command_refuses_to_run_in_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="not production"):
        call_command("swc_simulator", "--port", "0")


def test_the_replicate_simulator_command_refuses_a_public_address():
    with pytest.raises(CommandError, match="loopback only"):
        call_command("replicate_simulator", "--host", "0.0.0.0", "--port", "0")  # noqa: S104


def test_the_replicate_simulator_command_refuses_to_run_in_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="not production"):
        call_command("replicate_simulator", "--port", "0")


def test_kie_status_says_when_the_key_is_rejected(simulator, settings, capsys):
    settings.KIE_BASE_URL = simulator.url
    settings.KIE_API_KEY = "not-the-key"

    with pytest.raises(CommandError, match="Kie refused the request"):
        call_command("kie_status")

    assert "API key: rejected" in capsys.readouterr().out


def test_kie_status_says_when_kie_cannot_be_reached(settings):
    settings.KIE_BASE_URL = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(CommandError, match="Could not reach Kie"):
        call_command("kie_status")


def test_make_run_starts_the_simulators_and_the_app_talks_to_them(tmp_path):
    """With the GPU providers' simulators asked for (`make run` alone starts only Kie's: files
    are cleaned by our own remover)."""
    web_port, simulator_port, replicate_port = free_port(), free_port(), free_port()
    swc_ports = [free_port(), free_port()]
    env = command_env(
        tmp_path,
        DJANGO_ENV="local",
        PORT=str(web_port),
        KIE_SIMULATOR_PORT=str(simulator_port),
        SWC_SIMULATOR="1",
        REPLICATE_SIMULATOR="1",
        SWC_SIMULATOR_PORTS=",".join(map(str, swc_ports)),
        METRICS_TOKEN="local-metrics-token",
        REPLICATE_SIMULATOR_PORT=str(replicate_port),
    )
    log = tmp_path / "run_local.log"
    with log.open("wb") as out:
        run = subprocess.Popen(
            [*MANAGE, "run_local"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(f"http://127.0.0.1:{simulator_port}/__sim__/tasks", run, log)
        wait_for(f"http://127.0.0.1:{web_port}/healthz", run, log)
        for port in swc_ports:
            wait_for(f"http://127.0.0.1:{port}/api/v1/get_queue_status", run, log)
        metrics = httpx.get(
            f"http://127.0.0.1:{web_port}/metrics",
            headers={"Authorization": "Bearer local-metrics-token"},
        )
        wait_for(f"http://127.0.0.1:{replicate_port}/__sim__/predictions", run, log)
        # The app's Replicate client finds the simulator and its token works there.
        replicate = subprocess.run(
            [
                *MANAGE,
                "shell",
                "--no-imports",
                "-c",
                "from apps.removal.registry import get_provider; "
                "get_provider('replicate').probe(); "
                "print(get_provider('replicate').signing_secret()[:6])",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # A fresh process reading the same environment, as the worker does.
        status = subprocess.run(
            [*MANAGE, "kie_status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        returncode = stop(run, signal.SIGINT)

    # gunicorn's workers and the task worker share one metrics folder (multiprocess mode:
    # no single process's Python figures), and the database's gauges are there.
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    assert "unmark_queue_depth" in families
    assert "python_gc_objects_collected" not in families
    assert (tmp_path / "prometheus").is_dir()
    assert replicate.stdout.strip() == "whsec_", replicate.stderr
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines() == [
        f"Endpoint: http://127.0.0.1:{simulator_port} (the local Kie simulator)",
        "API key: works",
        "Remaining Kie credits: 10000000 (enough for 1000000 videos)",
    ]
    assert returncode == 0, log.read_text()
    output = log.read_text()
    assert f"Unmark is running on http://127.0.0.1:{web_port}/" in output
    assert "Uploaded files are cleaned by Unmark's own remover (1 at a time)" in output
    assert f"Kie simulator on http://127.0.0.1:{simulator_port}/" in output
    assert "Kie simulator stopped." in output  # it too stopped cleanly on the supervisor's TERM
    swc_urls = ", ".join(f"http://127.0.0.1:{port}/" for port in swc_ports)
    assert f"SWC simulators on {swc_urls}" in output
    assert output.count("SWC simulator stopped.") == 2
    assert f"Replicate simulator on http://127.0.0.1:{replicate_port}/" in output
    assert "Replicate simulator stopped." in output
    for port in (simulator_port, *swc_ports, replicate_port):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/__sim__/tasks")
