"""Vetting an address someone else gave us before the app connects to it (SSRF).

Two features fetch or post to URLs that come from outside: result downloads (a provider's
link, `apps.jobs.download`) and outgoing webhooks (a team's endpoint, `apps.webhooks`). Both
refuse names that resolve — any of their addresses, not only the first — to private,
loopback, link-local, multicast or otherwise non-public addresses, and then connect to
exactly the address that was checked, never to whatever the name resolves to a moment later
(DNS rebinding). Each caller words the refusal for its own readers.
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
        ip = ipaddress.ip_address(address.split("%")[0])
        if allow_loopback and ip.is_loopback:
            continue
        if not ip.is_global or ip.is_multicast:
            raise AddressRefused(Refusal.PRIVATE)
    return addresses[0]


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
