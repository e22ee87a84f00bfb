"""Who may use the demo's HTTP API, and how a request shows it (docs/demo.md#access-control).

A request is, first match wins:

1. **token-authenticated**: ``Authorization: Bearer <DEMO_API_TOKEN>``
   (a non-empty setting; compared as bytes in constant time). Served, with
   DEBUG on or off, and exempt from CSRF: a page of another site cannot add
   that header to a request without a CORS preflight, which the demo never
   grants. A ``Bearer`` header whose credentials are missing or not RFC 6750
   ``token68`` (non-ASCII, spaces, ...) is **malformed**: 400, whatever the
   rest of the request. A well-formed wrong token counts as no token; other
   schemes (``Basic ...``) are ignored.
2. **session-authenticated**: a logged-in user from the session cookie. The
   browser attaches that cookie to requests from any site, so the request
   must pass Django's CSRF check (the ``csrftoken`` cookie echoed in the
   ``X-CSRFToken`` header, the Origin or Referer checks): else 403. With
   DEBUG off the user must also be what the admin page of live connections
   asks for: staff with the permission ``wsmanager.manage_connections``
   (superusers have it), so the API and the admin never disagree on who may
   act.
3. **anonymous**: with DEBUG off, 403. With DEBUG on the API is open to
   scripts, but not to other sites' pages: a request whose ``Sec-Fetch-Site``
   is not ``same-origin`` or ``none``, or whose ``Origin`` is not the demo's
   own (``<request scheme>://<Host>``, as Django's CSRF check builds it), is
   refused with 403. Requests without those headers (curl, scripts, old
   browsers' same-origin GETs) are served.

Not guaranteed: DEBUG-on protection against a local program (anything that
can send raw HTTP to the port can use the open API), and against browsers that
send neither header on a cross-site request (every current browser sends
``Origin`` on cross-site POSTs).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from wsmanager.admin import PERMISSION

__all__ = ["REFUSED", "Access", "MalformedCredentials", "bearer_token", "cross_origin_reason", "decide"]

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SAME_SITE_FETCHES = ("same-origin", "none")
#: Why a request without the token, from someone the admin would refuse, is refused.
REFUSED = f"the API token, or a staff user with the permission {PERMISSION}, required"


class MalformedCredentials(ValueError):
    """An ``Authorization: Bearer`` header whose credentials are not a token68."""


@dataclass(frozen=True)
class Access:
    """What to do with a request: serve it (``csrf``: after Django's CSRF check) or refuse it."""

    allowed: bool
    csrf: bool = False
    status: int = 403
    reason: str = ""


def bearer_token(request: HttpRequest) -> str | None:
    """The credentials of an ``Authorization: Bearer`` header; None without one.

    Raises :class:`MalformedCredentials` when they are empty or not a token68.
    """
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, credentials = value.strip(" \t").partition(" ")
    if scheme.lower() != "bearer":
        return None
    credentials = credentials.strip(" ")
    if not _TOKEN68.fullmatch(credentials):
        raise MalformedCredentials(
            'malformed Authorization header: expected "Bearer <token>", the token made of '
            "A-Z a-z 0-9 - . _ ~ + / and trailing ="
        )
    return credentials


def token_matches(given: str) -> bool:
    """Whether ``given`` (ASCII, see :func:`bearer_token`) is the non-empty ``DEMO_API_TOKEN``."""
    expected = str(getattr(settings, "DEMO_API_TOKEN", "") or "")
    return bool(expected) and hmac.compare_digest(given.encode("ascii"), expected.encode("utf-8"))


def cross_origin_reason(request: HttpRequest) -> str | None:
    """Why the request comes from another site's page, or None when nothing says so."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in _SAME_SITE_FETCHES:
        return "cross-origin request refused: Sec-Fetch-Site is not same-origin"
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.get_host()}":
        return "cross-origin request refused: Origin is not this site"
    return None


def decide(request: HttpRequest) -> Access:
    """The rules of the module docstring, for one request."""
    try:
        token = bearer_token(request)
    except MalformedCredentials as exc:
        return Access(False, status=400, reason=str(exc))
    if token is not None and token_matches(token):
        return Access(True)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if settings.DEBUG or (user.is_staff and user.has_perm(PERMISSION)):
            return Access(True, csrf=True)
        return Access(False, reason=REFUSED)
    if settings.DEBUG:
        reason = cross_origin_reason(request)
        return Access(True) if reason is None else Access(False, reason=reason)
    return Access(False, reason=REFUSED)
