"""Logs that machines read (`LOG_FORMAT=json`), the request id that ties a request's lines
together, and errors sent to Sentry when `SENTRY_DSN` is set."""

import gzip
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from config.logfmt import JsonFormatter, KeyValueFormatter
from config.request_id import request_id_middleware
from tests.test_settings import run_manage


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the `unmark.test` logger writes, as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("unmark.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def logged(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def serve_logging(request: HttpRequest) -> HttpResponse:
    logging.getLogger("unmark.test").info("job state changed", extra={"job": "7f3a", "to": "done"})
    return HttpResponse("ok")


def test_a_json_line_has_time_level_logger_message_and_the_job(lines):
    logging.getLogger("unmark.test").warning(
        "kie call failed", extra={"job": "5b1c", "elapsed_ms": 31, "error": ValueError("x")}
    )

    [line] = logged(lines)
    assert set(line) == {"time", "level", "logger", "message", "job_id", "elapsed_ms", "error"}
    assert str(line["time"]).endswith("+00:00")
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING", "unmark.test", "kie call failed",
    )  # fmt: skip
    assert (line["job_id"], line["elapsed_ms"], line["error"]) == ("5b1c", 31, "x")


def test_a_json_line_keeps_the_exception_and_never_breaks_on_odd_values(lines):
    try:
        raise RuntimeError("the provider went away\nand said so")
    except RuntimeError:
        logging.getLogger("unmark.test").exception("check failed", extra={"level": "spoofed"})

    [line] = logged(lines)
    assert line["level"] == "ERROR"  # a context key never overwrites a fixed field
    assert "RuntimeError: the provider went away" in str(line["exception"])


def test_every_line_of_a_request_carries_its_id_and_the_response_returns_it(lines):
    middleware = request_id_middleware(serve_logging)

    response = middleware(RequestFactory().get("/", headers={"X-Request-ID": "lb-4f2a9c1e77"}))

    assert response["X-Request-ID"] == "lb-4f2a9c1e77"
    [line] = logged(lines)
    assert (line["request_id"], line["job_id"], line["to"]) == ("lb-4f2a9c1e77", "7f3a", "done")


@pytest.mark.parametrize(
    "incoming", ["", "short", "has spaces in it", "x" * 129, "id\nforged-line", "ünïcode-id-1234"]
)
def test_an_odd_incoming_request_id_is_replaced_not_echoed(lines, incoming):
    middleware = request_id_middleware(serve_logging)

    response = middleware(RequestFactory().get("/", headers={"X-Request-ID": incoming}))

    made = response["X-Request-ID"]
    assert made != incoming
    assert len(made) == 32
    assert logged(lines)[0]["request_id"] == made


def test_lines_outside_a_request_have_no_request_id(lines):
    logging.getLogger("unmark.test").info("sweep ran")

    assert "request_id" not in logged(lines)[0]


def test_key_value_lines_carry_the_request_id_too():
    record = logging.makeLogRecord({"name": "unmark.test", "msg": "hello", "job": "5b1c"})
    middleware = request_id_middleware(
        lambda request: HttpResponse(KeyValueFormatter().format(record))
    )

    response = middleware(RequestFactory().get("/", headers={"X-Request-ID": "req-12345678"}))

    assert response.content.decode().endswith("hello job=5b1c request_id=req-12345678")


@pytest.mark.django_db
def test_the_app_answers_with_a_request_id(client):
    response = client.get("/", headers={"X-Request-ID": "edge-0123456789"})

    assert response["X-Request-ID"] == "edge-0123456789"
    assert len(client.get("/healthz")["X-Request-ID"]) == 32


def test_log_format_json_makes_the_app_write_json_lines(tmp_path):
    script = (
        "import logging; "
        "logging.getLogger('unmark.jobs').info('job state changed', extra={'job': 'ab12'})"
    )

    result = run_manage(
        "shell", "--no-imports", "-c", script, env={"LOG_FORMAT": "json"}, tmp_path=tmp_path
    )

    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert (line["logger"], line["message"], line["job_id"]) == (
        "unmark.jobs", "job state changed", "ab12",
    )  # fmt: skip


def test_an_unknown_log_format_stops_the_start(tmp_path):
    result = run_manage("check", env={"LOG_FORMAT": "xml"}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr


class SentryIngest(BaseHTTPRequestHandler):
    """Sentry's ingest endpoint, reduced to keeping what it is sent."""

    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        SentryIngest.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def sentry() -> Iterator[str]:
    SentryIngest.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SentryIngest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/42"
    server.shutdown()
    server.server_close()


def test_with_sentry_dsn_an_error_reaches_sentry_without_personal_data(tmp_path, sentry):
    script = (
        "import sentry_sdk; from sentry_sdk.integrations.django import DjangoIntegration; "
        "client = sentry_sdk.get_client(); "
        "print(client.is_active(), client.options['send_default_pii'], "
        "client.get_integration(DjangoIntegration) is not None); "
        "sentry_sdk.capture_exception(RuntimeError('the test error')); sentry_sdk.flush(5)"
    )

    result = run_manage(
        "shell", "--no-imports", "-c", script, env={"SENTRY_DSN": sentry}, tmp_path=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["True", "False", "True"]
    [(path, body)] = SentryIngest.received
    assert path == "/api/42/envelope/"
    # An envelope: a header line, then each item's header and payload.
    [event] = [item for item in map(json.loads, body.splitlines()) if "exception" in item]
    assert event["exception"]["values"][0]["value"] == "the test error"
    assert event["environment"] == "local"  # DJANGO_ENV, unless SENTRY_ENVIRONMENT says
    assert "user" not in event


def test_an_api_key_in_a_frame_never_reaches_sentry(tmp_path, sentry):
    raw_key = "um_test_0123456789abSECRETPARTthatmustnotleave"
    # The key's hashing fails inside `digest(raw_key)`: the event holds that frame's variables.
    # The key comes from the environment, as from a request: not in the source Sentry quotes.
    script = (
        "import os, sentry_sdk\n"
        "from django.conf import settings\n"
        "from apps.api.keys import digest\n"
        "settings.API_KEY_HASH_KEY = None\n"
        "def show_once(new_secret):\n"
        "    context = {'new_key': new_secret, 'page': 'keys'}\n"
        "    digest(new_secret)\n"
        "try:\n"
        "    show_once(os.environ['THE_KEY'])\n"
        "except AttributeError as error:\n"
        "    sentry_sdk.capture_exception(error)\n"
        "sentry_sdk.flush(5)\n"
    )

    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        script,
        env={"SENTRY_DSN": sentry, "THE_KEY": raw_key},
        tmp_path=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    [(_, body)] = SentryIngest.received
    [event] = [item for item in map(json.loads, body.splitlines()) if "exception" in item]
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    frame_vars = {frame["function"]: frame.get("vars", {}) for frame in frames}
    assert frame_vars["digest"]["raw_key"] == "[Filtered]"
    assert frame_vars["show_once"]["new_secret"] == "[Filtered]"
    assert frame_vars["show_once"]["context"]["new_key"] == "[Filtered]"
    assert frame_vars["show_once"]["context"]["page"] == "'keys'"
    assert b"SECRETPART" not in body


def test_without_sentry_dsn_nothing_is_sent(tmp_path):
    script = "import sentry_sdk; print(sentry_sdk.get_client().is_active())"

    result = run_manage(
        "shell", "--no-imports", "-c", script, env={"SENTRY_DSN": ""}, tmp_path=tmp_path
    )

    assert result.stdout.split()[-1] == "False"
