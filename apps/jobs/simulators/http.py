"""The simulators' HTTP side: a threaded server on loopback only, and the handler that hands
every request to a simulator and writes its `Reply` (streamed when it is long). Shared by every
provider simulator (Kie, Replicate); what each answers is its own business."""

import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

logger = logging.getLogger(__name__)


@dataclass
class Reply:
    status: int
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    length: int | None = None  # required when `body` is streamed in chunks


def json_reply(status: int, payload: object) -> Reply:
    return Reply(status, json.dumps(payload, indent=1).encode())


class Answering(Protocol):
    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply: ...


def serve(simulator: Answering, host: str, port: int, *, name: str) -> "Server":
    """A server for `simulator` (`name` says which, in logs and errors); not yet serving."""
    require_loopback(host, name=name)
    server = Server((host, port), _Handler)
    server.simulator = simulator
    server.name = name
    return server


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow drill answer must not hold up stop()
    simulator: "Answering"
    name: str


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm, every answer on a
    # kept-alive connection would wait for a delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(Reply(400, b"Bad Content-Length", "text/plain"))
            return
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.simulator.answer(method, self.path, headers, body)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout drill, an aborted download): nothing to answer.
            self.close_connection = True

    def _send(self, reply: Reply) -> None:
        chunks = [reply.body] if isinstance(reply.body, bytes) else reply.body
        length = len(reply.body) if isinstance(reply.body, bytes) else reply.length
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(f"{self.server.name} http " + format, *args)


def require_loopback(host: str, *, name: str) -> None:
    if host == "localhost":
        return
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"The {name} listens on loopback only (127.0.0.1 or localhost), not {host!r}"
        )
