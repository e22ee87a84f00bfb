"""Origin checking: which web pages may open a socket.

Browsers send an ``Origin`` header with every WebSocket handshake and let
any page open a socket to any site, so a server must check it to stop
cross-site WebSocket hijacking. The rules (the same as Django's host checks
and Channels' ``AllowedHostsOriginValidator``):

* A pattern without a scheme (``example.com``, ``.example.com`` for the
  domain and its subdomains, ``*`` for anything) matches the origin's host,
  whatever its scheme and port.
* A pattern with a scheme (``https://example.com:8443``) must match scheme,
  host and port (default ports filled in).
* Hosts compare case-insensitively. ``Origin: null`` (sandboxed pages,
  ``file:`` URLs) and unparsable origins never match a host pattern; only
  ``*`` lets them in.
* No ``Origin`` header at all means the client is not a browser (a script,
  a service): cross-site hijacking cannot use it, so it is allowed unless
  ``WSMANAGER["REQUIRE_ORIGIN"]`` is true.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.utils.http import is_same_domain

__all__ = ["default_allowed_origins", "origin_allowed", "origin_of"]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def origin_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The Origin header's value from ASGI headers (None when absent)."""
    for name, value in headers:
        if name.lower() == b"origin":
            return value.decode("latin-1")
    return None


def default_allowed_origins() -> list[str]:
    """``ALLOWED_HOSTS``, or Django's local defaults when it is empty and DEBUG is on."""
    hosts = list(getattr(settings, "ALLOWED_HOSTS", []))
    if not hosts and settings.DEBUG:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def _port(parts: SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return -1
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def _matches(origin: SplitResult, pattern: str) -> bool:
    pattern = pattern.strip().lower()
    if pattern == "*":
        return True
    host = origin.hostname
    if not host:
        return False
    if "://" not in pattern:
        pattern_host = urlsplit("//" + pattern).hostname or pattern
        return bool(is_same_domain(host, pattern_host))
    want = urlsplit(pattern)
    return (
        want.scheme == origin.scheme
        and _port(want) == _port(origin)
        and bool(is_same_domain(host, want.hostname or ""))
    )


def origin_allowed(origin: str | None, allowed: Sequence[str], *, require: bool = False) -> bool:
    """Whether a handshake with this Origin value may proceed."""
    if origin is None:
        return not require
    if "*" in allowed:
        return True
    value = origin.strip().lower()
    if value in ("", "null"):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or _port(parts) == -1:  # -1: a malformed port
        return False
    return any(_matches(parts, pattern) for pattern in allowed)
