"""``wsmanager.connection._origin``: which Origin values a pattern list admits (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from wsmanager.connection._origin import Target, default_allowed_origins, origin_allowed, origin_of, target_of

SITE = ["example.com", ".example.org", "https://secure.example.net:8443", "dev.example.io:3000"]
WSS = Target("https", 443)  # wss://<host>/ : the page of a wss socket is https
WS = Target("http", 80)  # ws://<host>/
WS_8000 = Target("http", 8000)  # ws://<host>:8000/
WSS_8443 = Target("https", 8443)  # wss://<host>:8443/


@pytest.mark.parametrize(
    ("origin", "target", "allowed"),
    [
        # A host pattern: the socket's own web scheme, on the default port or the socket's port.
        ("https://example.com", WSS, True),
        ("https://example.com:443", WSS, True),  # the default port, written out
        ("http://example.com", WSS, False),  # an http page for a wss socket (Django: scheme differs)
        ("https://example.com:1234", WSS, False),  # another port: another origin
        ("http://example.com", WS, True),
        ("https://example.com", WS, False),  # an https page for a ws socket
        ("http://example.com:8000", WS_8000, True),  # the port the socket was opened on
        ("http://example.com", WS_8000, True),  # the scheme's default port
        ("http://example.com:8080", WS_8000, False),
        ("http://example.com:8000", WS, False),
        ("https://example.com:8443", WSS_8443, True),
        ("https://example.com", WSS_8443, True),
        ("HTTPS://EXAMPLE.COM", WSS, True),  # hosts compare case-insensitively
        ("https://www.example.com", WSS, False),  # "example.com" is that host only
        ("https://example.org", WSS, True),  # ".example.org": the domain ...
        ("https://chat.eu.example.org", WSS, True),  # ... and its subdomains
        ("http://chat.eu.example.org", WSS, False),  # ... with the socket's scheme
        ("https://example.org.evil.io", WSS, False),
        ("https://evilexample.org", WSS, False),
        # A host pattern with a port: that port only, still the socket's scheme.
        ("http://dev.example.io:3000", WS_8000, True),
        ("http://dev.example.io:8000", WS_8000, False),
        ("http://dev.example.io", WS, False),
        ("https://dev.example.io:3000", WS_8000, False),
        # A pattern with a scheme: scheme, host and port, whatever the socket's scheme.
        ("https://secure.example.net:8443", WSS, True),
        ("https://secure.example.net:8443", WS, True),
        ("https://secure.example.net", WSS, False),  # port 443, not 8443
        ("http://secure.example.net:8443", WS, False),
        # Never an origin.
        ("null", WSS, False),  # sandboxed pages, file: URLs
        ("", WSS, False),
        ("example.com", WSS, False),  # no scheme: not an origin
        ("ftp://example.com", WSS, False),
        ("https://example.com:notaport", WSS, False),
        ("https://[::1", WSS, False),  # unparsable
    ],
)
def test_origin_against_host_and_scheme_patterns(origin: str, target: Target, allowed: bool) -> None:
    """Host patterns: the socket's scheme and port (or the default); scheme patterns: exactly."""
    assert origin_allowed(origin, SITE, target) is allowed


def test_missing_origin_is_allowed_unless_required() -> None:
    """No Origin header: a script or a service; refused only with ``require=True``."""
    assert origin_allowed(None, SITE, WSS) is True
    assert origin_allowed(None, SITE, WSS, require=True) is False
    assert origin_allowed(None, ["*"], WSS, require=True) is False


def test_star_admits_every_origin_even_null() -> None:
    """``*`` lets in anything that has an Origin header, any scheme, any port."""
    for origin in ("https://anything.io", "http://anything.io:1234", "null", "not a url"):
        assert origin_allowed(origin, ["*"], WSS) is True


def test_origin_header_is_found_case_insensitively() -> None:
    """origin_of() reads the header whatever its case; None when absent."""
    assert origin_of([(b"host", b"x"), (b"Origin", b"https://a.io")]) == "https://a.io"
    assert origin_of([(b"host", b"x")]) is None


def scope(scheme: str | None = None, host: bytes | None = None, **more: Any) -> dict[str, Any]:
    headers = [(b"host", host)] if host is not None else []
    headers += [(name.replace("_", "-").encode(), value) for name, value in more.pop("headers", {}).items()]
    out: dict[str, Any] = {"type": "websocket", "headers": headers, **more}
    if scheme is not None:
        out["scheme"] = scheme
    return out


@pytest.mark.parametrize(
    ("the_scope", "target"),
    [
        (scope("wss", b"chat.example.com"), Target("https", 443)),
        (scope("ws", b"chat.example.com"), Target("http", 80)),
        (scope(None, b"localhost:8000"), Target("http", 8000)),  # ASGI's default scheme: ws
        (scope("wss", b"[::1]:8443"), Target("https", 8443)),
        (scope("ws", b"bad:port"), Target("http", 80)),  # junk Host: the default port
        (scope("ws", server=("127.0.0.1", 9000)), Target("http", 9000)),  # no Host: the server's port
        (scope("ws", server=("/tmp/sock", None)), Target("http", 80)),
        (scope("https", b"x.io"), Target("https", 443)),
    ],
)
def test_target_is_the_sockets_web_scheme_and_port(the_scope: dict[str, Any], target: Target) -> None:
    """ws -> http, wss -> https; the port from Host, else the server's, else the default."""
    assert target_of(the_scope) == target


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_a_tls_proxy_secure_proxy_ssl_header_decides_the_scheme() -> None:
    """As for Django's ``request.scheme``: the proxy's header, first value, wins over the scope."""
    proxied = scope("ws", b"chat.example.com", headers={"x_forwarded_proto": b"https, http"})
    assert target_of(proxied) == Target("https", 443)
    assert origin_allowed("https://chat.example.com", ["chat.example.com"], target_of(proxied))
    plain = scope("wss", b"chat.example.com", headers={"x_forwarded_proto": b"http"})
    assert target_of(plain) == Target("http", 80)
    assert target_of(scope("wss", b"chat.example.com")) == Target("https", 443)  # header absent


@override_settings(SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
def test_a_malformed_secure_proxy_ssl_header_is_a_configuration_error() -> None:
    """Not a (header, value) pair: ImproperlyConfigured, as Django's ``request.scheme`` raises."""
    with pytest.raises(ImproperlyConfigured):
        target_of(scope("ws", b"chat.example.com"))


def test_forwarded_host_gives_the_port_only_when_django_trusts_it() -> None:
    """``X-Forwarded-Host`` counts with ``USE_X_FORWARDED_HOST`` only, as in ``request.get_host()``."""
    forwarded = scope("ws", b"internal:8000", headers={"x_forwarded_host": b"chat.example.com:9000"})
    assert target_of(forwarded) == Target("http", 8000)
    with override_settings(USE_X_FORWARDED_HOST=True):
        assert target_of(forwarded) == Target("http", 9000)


def test_default_patterns_are_allowed_hosts_or_local_ones_in_debug() -> None:
    """ALLOWED_HOSTS when set; Django's local defaults when empty with DEBUG; nothing otherwise."""
    with override_settings(ALLOWED_HOSTS=["chat.example.com"], DEBUG=False):
        assert default_allowed_origins() == ["chat.example.com"]
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True):
        assert default_allowed_origins() == [".localhost", "127.0.0.1", "[::1]"]
        assert origin_allowed("http://localhost:8000", default_allowed_origins(), WS_8000) is True
        # A dev server on another port is another origin: name it with its scheme.
        assert origin_allowed("http://localhost:3000", default_allowed_origins(), WS_8000) is False
        assert origin_allowed("http://localhost:3000", ["http://localhost:3000"], WS_8000) is True
    with override_settings(ALLOWED_HOSTS=[], DEBUG=False):
        assert default_allowed_origins() == []
