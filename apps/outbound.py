"""Vetting an address someone else gave us before the app connects to it (SSRF).

Two features fetch or post to URLs that come from outside: result downloads (a provider's
link, `apps.jobs.download`) and outgoing webhooks (a team's endpoint, `apps.webhooks`). Both
refuse names that resolve — any of their addresses, not only the first — to private,
loopback, link-local, multicast or otherwise non-public addresses (an IPv4 address wrapped
in an IPv6 one is judged itself), and then connect to exactly the address that was checked,
never to whatever the name resolves to a moment later (DNS rebinding). Each caller words the
refusal for its own readers.
"""

import ipaddress
import socket
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit


class Refusal(StrEnum):
    MALFORMED = "malformed"  # no host, a bad port
    NOT_HTTPS = "not_https"
    PRIVATE = "private"  # some address of the name is not on the public internet
    UNRESOLVED = "unresolved"  # the name has no address (may be temporary)


class AddressRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


def vet(url: str, *, https_only: bool = True, allow_loopback: bool = False) -> str:
    """The one address to connect to for `url`, after checking every address its host has.

    `https_only=False` also lets plain http through (outside production); `allow_loopback`
    lets loopback addresses through (tests' own receivers) — never private or link-local ones.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused(Refusal.MALFORMED) from None
    allowed_schemes = ("https",) if https_only else ("https", "http")
    if parts.scheme not in allowed_schemes:
        raise AddressRefused(Refusal.NOT_HTTPS)
    if not host:
        raise AddressRefused(Refusal.MALFORMED)
    try:
        addresses = [
            str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        ]
    except (socket.gaierror, UnicodeError):
        raise AddressRefused(Refusal.UNRESOLVED) from None
    if not addresses:
        raise AddressRefused(Refusal.UNRESOLVED)
    for address in addresses:
        for ip in _destinations(ipaddress.ip_address(address.split("%")[0])):
            if allow_loopback and ip.is_loopback:
                continue
            if not ip.is_global or ip.is_multicast:
                raise AddressRefused(Refusal.PRIVATE)
    return addresses[0]


# NAT64 translators (RFC 6052's well-known prefix, RFC 8215's local-use one) carry an IPv4
# address in the last 32 bits; Python's `is_global` judges the IPv6 prefix, not that address
# (64:ff9b::a00:1 is 10.0.0.1, yet global to Python).
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Deprecated IPv4-compatible addresses (::a.b.c.d, RFC 4291): never a real public destination,
# and Python calls ::127.0.0.1 global. (:: and ::1 are in it too: unspecified and loopback.)
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


type Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _destinations(ip: Address) -> list[Address]:
    """The addresses a connection to `ip` really reaches: the IPv4 address inside an IPv6 one
    that wraps it (mapped, 6to4, Teredo's server and client, NAT64), else `ip` itself.
    Refuses IPv4-compatible addresses outright."""
    if isinstance(ip, ipaddress.IPv4Address) or ip.is_loopback:
        return [ip]
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    if ip.sixtofour:
        return [ip.sixtofour]
    if ip.teredo:
        return list(ip.teredo)
    if any(ip in network for network in NAT64):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)]
    if ip in IPV4_COMPATIBLE:
        raise AddressRefused(Refusal.PRIVATE)
    return [ip]


def pinned(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, str]]:
    """The request that connects to exactly the vetted `address`, not to whatever the name
    resolves to a moment later (DNS rebinding): the URL names the address, while the Host
    header and TLS (SNI and the certificate check) keep the original name. Returns the URL,
    the extra headers and the httpx/httpcore request extensions."""
    if address is None:
        return url, {}, {}
    parts = urlsplit(url)
    name = parts.netloc.rpartition("@")[2]  # host[:port], without any user part
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned_url = urlunsplit(parts._replace(netloc=netloc))
    return pinned_url, {"Host": name}, {"sni_hostname": parts.hostname or ""}
