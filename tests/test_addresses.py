"""``wsmanager.connection._addresses``: the client address, X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest

from wsmanager.connection._addresses import client_address

PROXIES = ["127.0.0.1", "10.0.0.0/8", "::1"]


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": None if peer is None else [peer, 50000], "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", (), [], "203.0.113.9"),
        # Without trusted proxies the header is never read.
        ("127.0.0.1", ("198.51.100.1",), [], "127.0.0.1"),
        # An untrusted peer cannot choose its address.
        ("203.0.113.9", ("198.51.100.1",), PROXIES, "203.0.113.9"),
        # A trusted proxy: the entry it appended is the client.
        ("127.0.0.1", ("198.51.100.1",), PROXIES, "198.51.100.1"),
        # Read right to left, skipping trusted proxies; what the client wrote on the left is ignored.
        ("127.0.0.1", ("6.6.6.6, 198.51.100.1, 10.1.2.3",), PROXIES, "198.51.100.1"),
        # Several headers are one list, in order.
        ("127.0.0.1", ("6.6.6.6", "198.51.100.1"), PROXIES, "198.51.100.1"),
        # Only trusted proxies in the chain: the left-most of them.
        ("127.0.0.1", ("10.0.0.5",), PROXIES, "10.0.0.5"),
        # A malformed entry where the client should be: the last trusted proxy is the client.
        ("127.0.0.1", ("not-an-ip",), PROXIES, "127.0.0.1"),
        ("127.0.0.1", ("6.6.6.6, garbage, 10.0.0.7",), PROXIES, "10.0.0.7"),
        # Ports and brackets are taken off; IPv6 is normalised.
        ("127.0.0.1", ("198.51.100.1:4711",), PROXIES, "198.51.100.1"),
        ("::1", ("[2001:DB8::1]:443",), PROXIES, "2001:db8::1"),
        ("2001:0db8:0000::7", (), PROXIES, "2001:db8::7"),
    ],
)
def test_client_address(peer: str, forwarded: tuple[str, ...], trusted: list[str], expected: str) -> None:
    assert client_address(scope(peer, *forwarded), trusted) == expected


def test_no_client_in_the_scope_is_none() -> None:
    assert client_address(scope(None), PROXIES) is None


def test_a_peer_that_is_not_an_ip_is_kept_as_it_is() -> None:
    assert client_address(scope("/run/daphne.sock"), PROXIES) == "/run/daphne.sock"
