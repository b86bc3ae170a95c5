"""The simulators' HTTP side: a threaded server on loopback only, and the handler that hands
every request to a simulator and writes its `Reply` (streamed when it is long). Shared by every
provider simulator (Kie, SWC, Replicate); what each answers is its own business.

A simulator gets the request body as a stream of `length` bytes: JSON APIs read it at once
(`read_body`), SWC streams video uploads to disk. The server keeps track of its connections so
that a stopped simulator can drop kept-alive ones and look like a dead process."""

import contextlib
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

logger = logging.getLogger(__name__)

FILE_CHUNK_BYTES = 256 * 1024


@dataclass
class Reply:
    status: int
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    length: int | None = None  # required when `body` is streamed in chunks


def json_reply(status: int, payload: object) -> Reply:
    return Reply(status, json.dumps(payload, indent=1).encode())


def file_reply(path: Path, content_type: str) -> Reply:
    """A file streamed from disk (opened as it is sent)."""

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(FILE_CHUNK_BYTES):
                yield chunk

    return Reply(200, chunks(), content_type, length=path.stat().st_size)


def read_body(body: BinaryIO, length: int) -> bytes:
    return body.read(length) if length > 0 else b""


class Answering(Protocol):
    def answer(
        self, method: str, target: str, headers: dict[str, str], body: BinaryIO, length: int
    ) -> Reply: ...


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

    def server_activate(self) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Closes kept-alive connections too: a stopped simulator must look like a dead
        process, not keep answering old connections."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


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
            length = -1
        if length < 0:
            self._send(Reply(400, b'{"detail": "Bad Content-Length"}'))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            reply = self.server.simulator.answer(
                method, self.path, headers, cast(BinaryIO, self.rfile), length
            )
            self._send(reply)
        except OSError:
            # The client gave up (a timeout drill, an aborted download), or the simulator is
            # stopping under this request: nothing to answer.
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
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"The {name} listens on loopback only (127.0.0.1 or localhost), not {host!r}"
        )
