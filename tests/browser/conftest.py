"""Browser journeys: Debian's Chromium, driven by Playwright, against the whole app running.

- The app is served by pytest-django's live server, a thread of this process.
- Jobs are worked by a real `manage.py worker` cluster sharing the test database
  (`tests/live.py`), which sends links to a Kie simulator running in this process on an
  ephemeral port; the simulator calls back into the live server, as Kie calls back production.
- Chromium is Debian's (`/usr/bin/chromium`); `playwright install` is never used. Without it
  the journeys are skipped with a reason, except in CI (`.ci/run` installs it), where they fail.
- When a journey fails, every page it opened is saved to `test-artifacts/<test>/` as a
  screenshot and its HTML, with the worker's log next to them.
- Every journey fails if the browser reports a Content-Security-Policy violation on any page
  it opened, after partial updates too (the console is watched from the first request).
- Emails the worker sends go by SMTP to a server in this process (`live_stack.mailbox`).
"""

import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)
from pytest_django.fixtures import Settings
from pytest_django.live_server_helper import LiveServer

from apps.simulators.kie import KieSimulator, SimulatorConfig
from tests.live import ROOT, WorkerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
# How long a click or an assertion waits for the page before failing (Playwright's default
# is 30 s, which makes a broken journey slow to report).
PAGE_TIMEOUT_MS = 10_000
expect.set_options(timeout=PAGE_TIMEOUT_MS)
# Seconds the simulator takes per task: long enough to see the states change on the page.
SIM_LATENCY = (0.5, 1.0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # CI installs Chromium, so a missing one there is an error to see, not a skip to miss.
    if CHROMIUM.exists() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(
        reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium); .ci/run installs it"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keeps each phase's report on the test, so fixtures can tell at teardown if the test failed.
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "rep_call", None)
    return report is not None and report.failed


def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^\w.-]+", "_", request.node.nodeid.removeprefix("tests/browser/"))
    folder = ARTIFACTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for a module's journeys (each opens contexts of its own: their own cookies
    and storage), instead of one launch per test. Not one per session: the browser's loop must
    stop before a test of another module runs in this process (see below)."""
    # Playwright's sync API keeps an asyncio loop running in this thread while the browser is
    # open, and Django refuses ORM calls from a thread with a running loop
    # (SynchronousOnlyOperation), so a journey could not read a row, nor pytest-django flush
    # the database after it. Test code is ordinary blocking code that never runs inside that
    # loop, so lifting the guard is safe while the module's journeys run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()


@pytest.fixture
def csp_violations() -> list[str]:
    """What the browser reported as Content-Security-Policy violations during the journey."""
    return []


@pytest.fixture
def open_page(
    browser: Browser,
    live_server: LiveServer,
    request: pytest.FixtureRequest,
    settings: Settings,
    csp_violations: list[str],
) -> Iterator[Callable[..., Page]]:
    """`open_page("alice")`: a page in a fresh browser context (its own cookies), for one person.

    Relative URLs (`page.goto("/dashboard/")`) go to the live server, and so do the links in
    the emails it sends (they start with SITE_URL, never the request's host).
    """
    settings.SITE_URL = live_server.url
    pages: dict[str, Page] = {}

    def watch_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            csp_violations.append(f"{message.location.get('url', '?')}: {message.text}")

    def open_one(name: str, *, viewport: ViewportSize = DESKTOP) -> Page:
        context = browser.new_context(
            base_url=live_server.url, viewport=viewport, accept_downloads=True
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        page.on("console", watch_console)
        pages[name] = page
        return page

    yield open_one
    if _failed(request):
        folder = artifacts_dir(request)
        for name, page in pages.items():
            if page.is_closed():
                continue
            page.screenshot(path=folder / f"{name}.png", full_page=True)
            (folder / f"{name}.html").write_text(page.content())
    for page in pages.values():
        page.context.close()
    if csp_violations and not _failed(request):
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(csp_violations))


class Mailbox:
    """An SMTP server on an ephemeral port that keeps what it receives, as parsed messages."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        with socket.socket() as probe:  # aiosmtpd checks its port by connecting: no port 0
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append(BytesParser(policy=policy.default).parsebytes(raw))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.messages) >= count, f"{len(self.messages)} emails arrived, not {count}"
        return self.messages


@dataclass
class LiveStack:
    """What runs behind the live server: the Kie simulator (tests may reconfigure it), one
    worker process (its log is in `worker.log`) and the SMTP server its emails go to."""

    simulator: KieSimulator
    worker: WorkerProcess
    mailbox: Mailbox


@pytest.fixture
def worker_env() -> dict[str, str]:
    """More environment for the worker process; journeys override it (SWC servers, say)."""
    return {}


@pytest.fixture
def live_stack(
    transactional_db: None,
    live_server: LiveServer,
    settings,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    worker_env: dict[str, str],
) -> Iterator[LiveStack]:
    simulator = KieSimulator(
        SimulatorConfig(api_key=settings.KIE_SIMULATOR_API_KEY, latency=SIM_LATENCY)
    ).start()
    simulator_port = urlsplit(simulator.url).port
    assert simulator_port is not None
    # The worker keeps its media and partial downloads under VAR_DIR; the live server, which
    # serves previews and downloads, must read the same folder.
    var_dir = tmp_path / "var"
    settings.KIE_SIMULATOR = True
    settings.KIE_BASE_URL = simulator.url
    settings.KIE_API_KEY = settings.KIE_SIMULATOR_API_KEY
    settings.PUBLIC_BASE_URL = live_server.url
    settings.SITE_URL = live_server.url
    settings.DOWNLOAD_TEMP_DIR = str(var_dir / "tmp")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": var_dir / "media"},
        },
    }
    # With a public address, the worker gives Kie (here the simulator) a callback URL on the
    # live server, so jobs finish as soon as the simulator says so.
    mailbox = Mailbox()
    mailbox.controller.start()
    worker = WorkerProcess(
        var_dir=var_dir,
        simulator_port=simulator_port,
        extra_env={
            "PUBLIC_BASE_URL": live_server.url,
            "SITE_URL": live_server.url,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(mailbox.port),
            "EMAIL_USE_TLS": "false",
            **worker_env,
        },
    )
    try:
        yield LiveStack(simulator=simulator, worker=worker, mailbox=mailbox)
    finally:
        # Killed, not stopped: the journey is over, and a graceful stop waits for the task in
        # hand (up to WorkerProcess.stop's 20 s when it is a send to a stalled server).
        worker.kill()
        simulator.stop()
        mailbox.controller.stop()
        if _failed(request):
            shutil.copy(worker.log, artifacts_dir(request) / "worker.log")
