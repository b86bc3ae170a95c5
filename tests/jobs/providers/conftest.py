"""A Kie simulator on an ephemeral port, the real client pointed at it, and a callback catcher."""

import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.jobs.providers.base import TaskStatus
from apps.jobs.providers.kie import KieProvider
from apps.jobs.providers.simulator import KieSimulator, SimulatorConfig

SIM_KEY = "sim-test-key"
HMAC_KEY = "whsec-test-hmac-key"
SORA_LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"
# Fast enough for the suite, slow enough that tasks pass through their states.
TEST_LATENCY = (0.05, 0.05)


class FakeClock:
    """The simulator's clock, moved by hand: states and the 429 window without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., KieSimulator]]:
    """`make_simulator(failure_rate=1, clock=clock)` starts one; all stop after the test."""
    started: list[KieSimulator] = []

    def make(*, clock: Callable[[], float] = time.monotonic, **settings: object) -> KieSimulator:
        settings.setdefault("latency", TEST_LATENCY)
        simulator = KieSimulator(SimulatorConfig(api_key=SIM_KEY, **settings), clock=clock)  # type: ignore[arg-type]
        started.append(simulator.start())
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., KieSimulator]) -> KieSimulator:
    return make_simulator()


@pytest.fixture
def make_kie() -> Iterator[Callable[..., KieProvider]]:
    """`make_kie(simulator, webhook_hmac_key=...)`: the real client for a simulator."""
    built: list[KieProvider] = []

    def make(simulator: KieSimulator, **options: object) -> KieProvider:
        options.setdefault("api_key", SIM_KEY)
        options.setdefault("timeout_seconds", 5.0)
        provider = KieProvider(base_url=simulator.url, **options)  # type: ignore[arg-type]
        built.append(provider)
        return provider

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def kie(make_kie: Callable[..., KieProvider], simulator: KieSimulator) -> KieProvider:
    return make_kie(simulator)


def wait_until_final(kie: KieProvider, task_id: str) -> TaskStatus:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = kie.status(task_id)
        if status.is_final:
            return status
        time.sleep(0.02)
    pytest.fail(f"task {task_id} did not finish")


@dataclass
class Callback:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, object]:
        return json.loads(self.body)


@dataclass
class CallbackCatcher:
    """Our side of Kie's callbacks: records every POST and answers as the contract asks."""

    url: str
    received: "queue.Queue[Callback]" = field(default_factory=queue.Queue)

    def next(self) -> Callback:
        try:
            return self.received.get(timeout=10)
        except queue.Empty:
            pytest.fail("no callback arrived")


@pytest.fixture
def callbacks() -> Iterator[CallbackCatcher]:
    catcher: CallbackCatcher

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            catcher.received.put(Callback(dict(self.headers.items()), body))
            answer = b'{"code": 200, "msg": "success"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    catcher = CallbackCatcher(f"http://127.0.0.1:{server.server_address[1]}/hooks/kie/token-1/")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield catcher
    server.shutdown()
    server.server_close()
    thread.join()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
