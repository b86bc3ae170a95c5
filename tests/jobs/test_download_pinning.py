"""Downloads connect to the address that was vetted, whatever the name resolves to later."""

import socket
from pathlib import Path

import httpx
import pytest
import respx

from apps.jobs.download import DownloadError, store_result
from tests.stack import VIDEO

VETTED = "93.184.215.14"


@pytest.fixture
def rebinding_dns(monkeypatch) -> list[str]:
    """A name that resolves to a public address once, then to loopback (DNS rebinding)."""
    answers = [VETTED, "127.0.0.1"]
    asked: list[str] = []

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        asked.append(host)
        address = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_the_download_goes_to_the_vetted_address_with_the_original_name(
    rebinding_dns, media_storage, settings, tmp_path: Path
):
    settings.DOWNLOAD_TEMP_DIR = str(tmp_path / "tmp")
    with respx.mock(assert_all_called=True) as network:
        route = network.get(f"https://{VETTED}/results/out.mp4").mock(
            return_value=httpx.Response(200, content=VIDEO, headers={"content-type": "video/mp4"})
        )
        stored = store_result(
            "https://cdn.example.com/results/out.mp4",
            storage_name="results/out.mp4",
            temp_name="out.part",
            heartbeat=lambda seconds: None,
            seal=lambda path: None,
        )

    request = route.calls.last.request
    assert request.headers["host"] == "cdn.example.com"
    assert request.extensions["sni_hostname"] == "cdn.example.com"
    assert rebinding_dns == ["cdn.example.com"]  # looked up once: nothing to rebind
    assert stored.size == len(VIDEO)


def test_a_name_with_any_private_address_is_refused_before_connecting(monkeypatch, settings):
    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (VETTED, port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with respx.mock(assert_all_called=False) as network:
        route = network.route().mock(return_value=httpx.Response(200, content=VIDEO))
        with pytest.raises(DownloadError, match="private network"):
            store_result(
                "https://cdn.example.com/out.mp4",
                storage_name="results/x.mp4",
                temp_name="x.part",
                heartbeat=lambda seconds: None,
                seal=lambda path: None,
            )
    assert not route.called


@pytest.mark.parametrize("address", ["64:ff9b::a00:5", "::ffff:10.0.0.5", "::10.0.0.5"])
def test_a_private_address_wrapped_in_ipv6_is_refused_before_connecting(monkeypatch, address):
    # NAT64 of 10.0.0.5, IPv4-mapped, IPv4-compatible: the network still reaches 10.0.0.5.
    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with respx.mock(assert_all_called=False) as network:
        route = network.route().mock(return_value=httpx.Response(200, content=VIDEO))
        with pytest.raises(DownloadError, match="private network"):
            store_result(
                "https://cdn.example.com/out.mp4",
                storage_name="results/x.mp4",
                temp_name="x.part",
                heartbeat=lambda seconds: None,
                seal=lambda path: None,
            )
    assert not route.called
