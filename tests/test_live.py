"""The round-robin balancer the multi-machine drill puts in front of its web servers."""

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.live import TcpProxy


class NamedServer:
    """Answers every connection with its name, then closes it."""

    def __init__(self, name: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.name = name
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                connection.sendall(self.name)

    def close(self) -> None:
        """Stops listening, like a server that died: connections to it are refused."""
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.listener.close()


@pytest.fixture
def servers() -> Iterator[list[NamedServer]]:
    started = [NamedServer(b"web-1"), NamedServer(b"web-2")]
    yield started
    for server in started:
        with contextlib.suppress(OSError):
            server.close()


def ask(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        return connection.recv(100)


def test_new_connections_alternate_between_the_servers(servers):
    balancer = TcpProxy(*(server.address for server in servers))

    answers = [ask(balancer.port) for _ in range(4)]

    assert answers == [b"web-1", b"web-2", b"web-1", b"web-2"]
    balancer.cut()


def test_a_dead_server_drops_out_and_the_other_takes_every_connection(servers):
    balancer = TcpProxy(*(server.address for server in servers))
    servers[0].close()

    answers = [ask(balancer.port) for _ in range(3)]

    assert answers == [b"web-2"] * 3
    balancer.cut()
