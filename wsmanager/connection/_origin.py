"""Origin checking: which web pages may open a socket.

Browsers send an ``Origin`` header with every WebSocket handshake and let
any page open a socket to any site, so a server must check it to stop
cross-site WebSocket hijacking. The rules follow the scheme rule of Django's
CSRF origin check (``CsrfViewMiddleware``: an origin is ``scheme://host[:port]``
and the scheme is part of it):

* A pattern without a scheme (``example.com``, ``.example.com`` for the
  domain and its subdomains) names hosts, and admits a page on such a host
  **with the socket's own web scheme** (``https`` for a ``wss`` socket,
  ``http`` for ``ws``, as Django compares an origin with
  ``request.scheme``) **on the default port of that scheme or on the port the
  socket was opened on** (the ``Host`` header's). A pattern with a port
  (``localhost:3000``) admits that port instead. So ``chat.example.com``
  admits ``https://chat.example.com`` for ``wss://chat.example.com/...`` and
  refuses ``http://chat.example.com`` and ``https://chat.example.com:1234``.
* A pattern with a scheme (``https://example.com:8443``) must match scheme,
  host and port exactly (default ports filled in), whatever the socket's
  scheme: use it for pages on another scheme or port.
* ``*`` admits anything that sends an Origin header, even ``null``.
* Hosts compare case-insensitively. ``Origin: null`` (sandboxed pages,
  ``file:`` URLs) and unparsable origins never match a host pattern.
* No ``Origin`` header at all means the client is not a browser (a script,
  a service): cross-site hijacking cannot use it, so it is allowed unless
  ``WSMANAGER["REQUIRE_ORIGIN"]`` is true.

The socket's scheme and port (:func:`target_of`) come from the ASGI scope as
Django reads a request: ``SECURE_PROXY_SSL_HEADER`` decides the scheme when it
is set and its header is present, else the scope's ``scheme``; the port comes
from ``X-Forwarded-Host`` when ``USE_X_FORWARDED_HOST`` is on, else from
``Host``, else from the scope's ``server``. Behind a proxy that terminates TLS
set ``SECURE_PROXY_SSL_HEADER`` (Django's CSRF check needs it too), or the
socket looks like ``ws`` and ``https`` pages are refused.

Not guaranteed: that the ``Host`` header is one of ``ALLOWED_HOSTS`` (the
WebSocket handshake does not go through Django's host validation; the port
taken from it only widens what a pattern's own host admits).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.http import is_same_domain

__all__ = ["Target", "default_allowed_origins", "origin_allowed", "origin_of", "target_of"]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_WEB_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


@dataclass(frozen=True)
class Target:
    """Where the socket was opened, as a page of that server would see it.

    ``scheme`` is the web scheme of the server's own pages (``"http"`` or
    ``"https"``); ``port`` the port the client reached.
    """

    scheme: str = "http"
    port: int = 80


def origin_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The Origin header's value from ASGI headers (None when absent)."""
    return _header(headers, b"origin")


def _header(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value.decode("latin-1")
    return None


def _meta_to_header(meta_key: str) -> bytes:
    """``HTTP_X_FORWARDED_PROTO`` (Django's META spelling) -> ``x-forwarded-proto``."""
    return meta_key.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")


def _scheme(scope: Mapping[str, Any], headers: list[tuple[bytes, bytes]]) -> str:
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        try:
            name, secure_value = proxy
        except (TypeError, ValueError):
            raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must be a (header, value) pair") from None
        value = _header(headers, _meta_to_header(name))
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return _WEB_SCHEMES.get(str(scope.get("scheme") or "ws").lower(), "http")


def target_of(scope: Mapping[str, Any]) -> Target:
    """The socket's :class:`Target` from an ASGI scope (see the module docstring)."""
    headers = list(scope.get("headers") or [])
    scheme = _scheme(scope, headers)
    host = None
    if getattr(settings, "USE_X_FORWARDED_HOST", False):
        host = _header(headers, b"x-forwarded-host")
    if host is None:
        host = _header(headers, b"host")
    port: int | None = None
    if host is not None:
        try:
            port = urlsplit("//" + host.strip()).port
        except ValueError:
            port = None
    elif scope.get("server"):
        port = int(scope["server"][1]) if scope["server"][1] is not None else None
    return Target(scheme, port if port is not None else _DEFAULT_PORTS[scheme])


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


def _matches(origin: SplitResult, pattern: str, target: Target) -> bool:
    pattern = pattern.strip().lower()
    if pattern == "*":
        return True
    host = origin.hostname
    if not host:
        return False
    if "://" not in pattern:
        try:
            want = urlsplit("//" + pattern)
            pattern_port = want.port
        except ValueError:
            return False
        if origin.scheme != target.scheme:
            return False
        ports = {pattern_port} if pattern_port is not None else {_DEFAULT_PORTS[target.scheme], target.port}
        return _port(origin) in ports and bool(is_same_domain(host, want.hostname or pattern))
    want = urlsplit(pattern)
    return (
        want.scheme == origin.scheme
        and _port(want) == _port(origin)
        and bool(is_same_domain(host, want.hostname or ""))
    )


def origin_allowed(
    origin: str | None, allowed: Sequence[str], target: Target, *, require: bool = False
) -> bool:
    """Whether a handshake with this Origin value, opened at ``target``, may proceed."""
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
    return any(_matches(parts, pattern, target) for pattern in allowed)
