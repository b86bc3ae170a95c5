"""Endpoints are checked like result downloads: https only in production, never private,
loopback or link-local addresses, and the connection goes to the address that was vetted."""

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from apps.webhooks import sending, services
from apps.webhooks.models import Delivery, DeliveryState, EventType
from apps.webhooks.services import UrlRefused, vet_url
from tests.factories import make_endpoint
from tests.webhooks.certificates import self_signed
from tests.webhooks.receiver import Receiver, start_receiver

pytestmark = pytest.mark.django_db

PRIVATE = "This address points into a private network"
real_getaddrinfo = socket.getaddrinfo


def resolving(monkeypatch, name: str, *answers: list[str]) -> list[str]:
    """`name` resolves to each list of addresses in turn (the last one from then on); every
    other name, and address literals, resolve for real. Returns the names looked up."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple]:
        if host != name:
            return real_getaddrinfo(host, port, *args, **kwargs)
        asked.append(host)
        addresses = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/hook",
        "http://192.168.1.20:8080/hook",
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "http://[fe80::1]/hook",
        "http://[fd00::5]/hook",
        "http://127.0.0.1:9000/hook",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(url):
    with pytest.raises(UrlRefused, match=PRIVATE):
        vet_url(url)


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:a00:1:8000:63bf:a247:28f1",  # Teredo whose server is 10.0.0.1 (client public)
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo whose client is 10.0.0.1 (server public)
        "64:ff9b::a00:1",  # NAT64 (well-known prefix) of 10.0.0.1: global to Python 3.13
        "64:ff9b::a9fe:a9fe",  # NAT64 of the cloud metadata service, 169.254.169.254
        "64:ff9b:1::7f00:1",  # NAT64 (local-use prefix) of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible (deprecated): global to Python 3.13
        "::5db8:d70e",  # IPv4-compatible of a public address: refused all the same
    ],
)
def test_a_private_ipv4_address_wrapped_in_an_ipv6_one_is_refused(monkeypatch, address):
    resolving(monkeypatch, "hooks.example.com", [address])
    with pytest.raises(UrlRefused, match=PRIVATE):
        vet_url("https://hooks.example.com/unmark")


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::5db8:d70e", "2002:5db8:d70e::1", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
)
def test_a_public_ipv4_address_reached_through_nat64_or_6to4_is_let_through(monkeypatch, address):
    resolving(monkeypatch, "hooks.example.com", [address])
    assert vet_url("https://hooks.example.com/unmark") == address


def test_loopback_wrapped_in_an_ipv6_address_passes_only_with_the_loopback_setting(
    settings, monkeypatch
):
    resolving(monkeypatch, "hooks.example.com", ["::ffff:127.0.0.1"])
    with pytest.raises(UrlRefused, match=PRIVATE):
        vet_url("https://hooks.example.com/unmark")
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    assert vet_url("https://hooks.example.com/unmark") == "::ffff:127.0.0.1"


def test_a_name_with_any_private_address_is_refused(monkeypatch):
    resolving(monkeypatch, "hooks.example.com", ["93.184.215.14", "10.0.0.5"])
    with pytest.raises(UrlRefused, match=PRIVATE):
        vet_url("https://hooks.example.com/unmark")


def test_loopback_is_let_through_only_by_the_explicit_setting_and_private_never(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    assert vet_url("http://127.0.0.1:9000/hook") == "127.0.0.1"
    for url in ("http://10.0.0.5/hook", "http://169.254.169.254/"):
        with pytest.raises(UrlRefused, match=PRIVATE):
            vet_url(url)


def test_production_takes_https_only(settings, monkeypatch):
    resolving(monkeypatch, "hooks.example.com", ["93.184.215.14"])
    settings.WEBHOOK_HTTPS_ONLY = True
    with pytest.raises(UrlRefused, match="Use an https:// address"):
        vet_url("http://hooks.example.com/unmark")
    assert vet_url("https://hooks.example.com/unmark") == "93.184.215.14"


def test_another_scheme_is_told_what_this_deployment_accepts(settings, monkeypatch):
    resolving(monkeypatch, "hooks.example.com", ["93.184.215.14"])
    settings.WEBHOOK_HTTPS_ONLY = False
    with pytest.raises(UrlRefused) as local:
        vet_url("ftp://hooks.example.com/unmark")
    settings.WEBHOOK_HTTPS_ONLY = True
    with pytest.raises(UrlRefused) as production:
        vet_url("ftp://hooks.example.com/unmark")

    assert str(local.value) == (
        "Use an https:// address (or http://, which this server also accepts)."
    )
    assert str(production.value) == "Use an https:// address: messages carry your team's data."


def test_an_unknown_name_is_refused_in_plain_words():
    with pytest.raises(UrlRefused, match="No server answers to this name"):
        vet_url("https://no-such-host.invalid/hook")


def test_an_endpoint_whose_name_now_points_inside_is_refused_at_sending(
    acme, receiver, monkeypatch
):
    # Vetted when it was added; its name has since been pointed into our network.
    endpoint = make_endpoint(acme, f"http://hooks.example.test:{receiver.port}/hook")
    resolving(monkeypatch, "hooks.example.test", ["10.0.0.5"])
    [delivery_id] = services.emit(team_id=acme.pk, event_type=EventType.JOB_FAILED, payload={})

    assert sending.deliver(delivery_id=delivery_id) == DeliveryState.PENDING

    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.last_error.startswith(f"Refused: {PRIVATE}")
    assert delivery.last_status is None
    assert receiver.received == []
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None


def test_dns_rebinding_cannot_move_the_connection_after_the_check(acme, receiver, monkeypatch):
    # The name answers the vetted (test-allowed loopback) address once, then a private one:
    # the post must still reach the vetted address, with the name in its Host header.
    asked = resolving(monkeypatch, "hooks.example.test", ["127.0.0.1"], ["10.0.0.5"])
    make_endpoint(acme, f"http://hooks.example.test:{receiver.port}/hook")
    [delivery_id] = services.emit(team_id=acme.pk, event_type=EventType.JOB_FAILED, payload={})

    assert sending.deliver(delivery_id=delivery_id) == DeliveryState.SUCCEEDED

    assert asked == ["hooks.example.test"]  # looked up once: nothing to rebind
    assert receiver.last().headers["Host"] == f"hooks.example.test:{receiver.port}"


@pytest.fixture
def https_receiver(tmp_path, monkeypatch, settings) -> Iterator[Receiver]:
    """An https receiver whose certificate names `hooks.example.test`, trusted as a public
    authority would be (SSL_CERT_FILE), so the real certificate check runs."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    settings.WEBHOOK_HTTPS_ONLY = True
    cert, key = self_signed("hooks.example.test", tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    sending._ssl_context.cache_clear()
    receiver = start_receiver(tls=context)
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
    sending._ssl_context.cache_clear()


def test_over_https_the_pinned_address_is_checked_against_the_name(
    acme, https_receiver, monkeypatch
):
    receiver = https_receiver
    asked = resolving(monkeypatch, "hooks.example.test", ["127.0.0.1"], ["10.0.0.5"])
    endpoint = make_endpoint(acme, f"https://hooks.example.test:{receiver.port}/hook")
    [delivery_id] = services.emit(team_id=acme.pk, event_type=EventType.JOB_FAILED, payload={})

    assert sending.deliver(delivery_id=delivery_id) == DeliveryState.SUCCEEDED

    assert asked == ["hooks.example.test"]
    assert receiver.last().verify(endpoint.secret)["type"] == "job.failed"


def test_over_https_a_certificate_for_another_name_is_refused(acme, https_receiver, monkeypatch):
    receiver = https_receiver
    resolving(monkeypatch, "elsewhere.example.test", ["127.0.0.1"])
    make_endpoint(acme, f"https://elsewhere.example.test:{receiver.port}/hook")
    [delivery_id] = services.emit(team_id=acme.pk, event_type=EventType.JOB_FAILED, payload={})

    assert sending.deliver(delivery_id=delivery_id) == DeliveryState.PENDING

    assert Delivery.objects.get(pk=delivery_id).last_error == (
        "The connection failed (its TLS certificate is not valid for this name)."
    )
    assert receiver.received == []
