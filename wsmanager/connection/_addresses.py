"""The client's network address, as the handshake shows it, trusting
``X-Forwarded-For`` only from configured proxies.

``WSMANAGER["TRUSTED_PROXIES"]`` lists the addresses or networks (``"10.0.0.0/8"``,
``"127.0.0.1"``) of the proxies in front of the server. When the peer of the
TCP connection is one of them, ``X-Forwarded-For`` is read from the right:
each entry a trusted proxy appended is skipped, and the first address that
is not a trusted proxy is the client. A peer that is not trusted is the
client, whatever headers it sends, so a client cannot choose its own
address. Without trusted proxies the header is never read.

Non-guarantees: the address is what the trusted proxies saw; several
clients behind one NAT share an address. A malformed entry where the client
should be makes the last trusted proxy the client (the cap then applies to
that proxy, never to an address the client made up).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

__all__ = ["Network", "client_address", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def parse_networks(specs: tuple[str, ...]) -> tuple[Network, ...]:
    """Networks from addresses or CIDR strings; ValueError for a malformed one."""
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(ip.version == net.version and ip in net for net in proxies)


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    entries: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            entries.extend(value.decode("latin-1").split(","))
    return entries


def client_address(scope: dict[str, Any], trusted_proxies: Sequence[str] = ()) -> str | None:
    """The client's address (a normalised IP string), or None when the server gave none."""
    client = scope.get("client")
    if not client:
        return None
    peer_text = str(client[0])
    peer = _ip(peer_text)
    if peer is None:
        return peer_text  # a unix socket path or the like: the peer is all we know
    proxies = parse_networks(tuple(trusted_proxies)) if trusted_proxies else ()
    if not proxies or not _trusted(peer, proxies):
        return str(peer)
    current = peer
    for entry in reversed(_forwarded_for(scope.get("headers") or [])):
        ip = _ip(entry)
        if ip is None:
            break
        current = ip
        if not _trusted(ip, proxies):
            break
    return str(current)
