"""``wsmanager.origin``: which Origin values a pattern list admits (pure functions)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from wsmanager.origin import default_allowed_origins, origin_allowed, origin_of

SITE = ["example.com", ".example.org", "https://secure.example.net:8443"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://example.com", True),
        ("http://example.com:8080", True),  # a host pattern ignores scheme and port
        ("HTTPS://EXAMPLE.COM", True),  # hosts compare case-insensitively
        ("https://www.example.com", False),  # "example.com" is that host only
        ("https://example.org", True),  # ".example.org": the domain ...
        ("https://chat.eu.example.org", True),  # ... and its subdomains
        ("https://example.org.evil.io", False),
        ("https://evilexample.org", False),
        ("https://secure.example.net:8443", True),  # a pattern with a scheme: scheme, host, port
        ("https://secure.example.net", False),  # port 443, not 8443
        ("http://secure.example.net:8443", False),
        ("null", False),  # sandboxed pages, file: URLs
        ("", False),
        ("example.com", False),  # no scheme: not an origin
        ("ftp://example.com", False),
        ("https://example.com:notaport", False),
        ("https://[::1", False),  # unparsable
    ],
)
def test_origin_against_host_and_scheme_patterns(origin: str, allowed: bool) -> None:
    """Host patterns match any scheme and port; scheme patterns match exactly; null never."""
    assert origin_allowed(origin, SITE) is allowed


def test_missing_origin_is_allowed_unless_required() -> None:
    """No Origin header: a script or a service; refused only with ``require=True``."""
    assert origin_allowed(None, SITE) is True
    assert origin_allowed(None, SITE, require=True) is False
    assert origin_allowed(None, ["*"], require=True) is False


def test_star_admits_every_origin_even_null() -> None:
    """``*`` lets in anything that has an Origin header."""
    for origin in ("https://anything.io", "null", "not a url"):
        assert origin_allowed(origin, ["*"]) is True


def test_origin_header_is_found_case_insensitively() -> None:
    """origin_of() reads the header whatever its case; None when absent."""
    assert origin_of([(b"host", b"x"), (b"Origin", b"https://a.io")]) == "https://a.io"
    assert origin_of([(b"host", b"x")]) is None


def test_default_patterns_are_allowed_hosts_or_local_ones_in_debug() -> None:
    """ALLOWED_HOSTS when set; Django's local defaults when empty with DEBUG; nothing otherwise."""
    with override_settings(ALLOWED_HOSTS=["chat.example.com"], DEBUG=False):
        assert default_allowed_origins() == ["chat.example.com"]
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True):
        assert default_allowed_origins() == [".localhost", "127.0.0.1", "[::1]"]
        assert origin_allowed("http://localhost:3000", default_allowed_origins()) is True
    with override_settings(ALLOWED_HOSTS=[], DEBUG=False):
        assert default_allowed_origins() == []
