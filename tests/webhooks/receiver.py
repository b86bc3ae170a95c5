"""A webhook receiver over a real socket: answers each post as the test tells it and keeps
what arrived, so the test can verify it with the `standardwebhooks` package, as a team's
own server would."""

import contextlib
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def verify(self, secret: str) -> Any:
        """The payload, if `secret` signed it; raises WebhookVerificationError otherwise."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"thanks"
    # Waits this long before answering at all.
    delay: float = 0.0
    # Sends the status line and headers, then the body one byte every `trickle` seconds.
    trickle: float = 0.0
    # Sends even the status line one byte every `drip` seconds.
    drip: float = 0.0


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    answers: deque[Answer] = field(default_factory=deque)
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/hooks/unmark", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, *answers: Answer | int) -> None:
        """What the next posts get, in order (then 200)."""
        for answer in answers:
            self.answers.append(Answer(status=answer) if isinstance(answer, int) else answer)

    def last(self) -> Received:
        assert self.received, "nothing arrived"
        return self.received[-1]


def start_receiver(*, tls: ssl.SSLContext | None = None) -> Receiver:
    """Listens on loopback; with `tls`, speaks https with that server context."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle(self) -> None:
            with contextlib.suppress(ConnectionError):  # the sender hung up mid-answer
                super().handle()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.received.append(Received(self.path, dict(self.headers.items()), body))
            receiver.arrived.set()
            answer = receiver.answers.popleft() if receiver.answers else Answer()
            time.sleep(answer.delay)
            try:
                if answer.drip:
                    for byte in f"HTTP/1.1 {answer.status} OK\r\n".encode():
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(answer.drip)
                    return
                self.send_response(answer.status)
                self.send_header("Content-Type", "text/plain")
                length = 10_000_000 if answer.trickle else len(answer.body)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if not answer.trickle:
                    self.wfile.write(answer.body)
                    return
                for _ in range(200):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(answer.trickle)
            except OSError:
                pass  # the sender hung up, as it should have
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.block_on_close = False
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return receiver
