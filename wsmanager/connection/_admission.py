"""Admission: whether a client may open a socket to a handler.

Checked in this order during the handshake, before the socket has an id or
a registry entry, so a refused client leaves nothing behind:

1. the Origin header against the handler's ``allowed_origins`` (else
   ``WSMANAGER["ALLOWED_ORIGINS"]``, else the site's ``ALLOWED_HOSTS``; see
   :mod:`wsmanager.connection._origin`);
2. ``require_authenticated``: anonymous users are refused;
3. the handler's ``authorize()`` hook; an exception in it refuses too (and
   is logged).

Each refusal is a :class:`~wsmanager.connection._refusals.Refusal`: HTTP 403 with a short
reason (``origin 'https://evil.example' is not allowed``, ``authentication
required``, ``not authorized``) in the body where the server can send one, and
a WARNING line on ``wsmanager.connection._refusals`` saying what was allowed and what to
change (see :mod:`wsmanager.connection._refusals`). An exception in ``authorize()`` is HTTP
500 (``server error``; its traceback goes to the log only).

``max_connections_per_user`` is checked afterwards, once the socket is in
the registry, because only then do concurrent handshakes of one user (in
any process) see each other: the socket over the limit is accepted and
closed with 4429. Two handshakes racing may both see the other and both be
refused; never are both admitted over the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._conf import get_settings
from ..registry import get_registry
from ._origin import default_allowed_origins, origin_allowed, origin_of, target_of
from ._refusals import Refusal, echo

__all__ = ["origin_ok", "origin_refusal", "over_user_limit", "refusal", "user_id_of"]

logger = logging.getLogger(__name__)

Scope = dict[str, Any]


def user_id_of(scope: Scope) -> str | None:
    """The authenticated user's primary key as a string; None for anonymous or no user."""
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.pk)
    return None


def _allowed(allowed_origins: Sequence[str] | None) -> tuple[list[str], str]:
    """The origin patterns in force, and where they come from (for the log)."""
    if allowed_origins is not None:
        return list(allowed_origins), "the handler's allowed_origins"
    conf = get_settings()
    if conf.allowed_origins is not None:
        return list(conf.allowed_origins), 'WSMANAGER["ALLOWED_ORIGINS"]'
    return default_allowed_origins(), "ALLOWED_HOSTS"


def origin_refusal(scope: Scope, allowed_origins: Sequence[str] | None) -> Refusal | None:
    """None if the handshake's Origin header is allowed by ``allowed_origins``
    (None: ``WSMANAGER["ALLOWED_ORIGINS"]``, else the site's ``ALLOWED_HOSTS``);
    else the refusal, saying which origin and (to the log) what was allowed."""
    allowed, source = _allowed(allowed_origins)
    origin = origin_of(scope.get("headers") or [])
    target = target_of(scope)
    require = get_settings().require_origin
    if origin_allowed(origin, allowed, target, require=require):
        return None
    if origin is None:
        return Refusal(
            "origin",
            "an Origin header is required",
            detail='WSMANAGER["REQUIRE_ORIGIN"] is on and the client sent no Origin',
        )
    return Refusal(
        "origin",
        f"origin {echo(origin)} is not allowed",
        detail=(
            f"allowed by {source}: {allowed}; the socket was opened for {target.scheme} pages "
            f"on port {target.port} (docs/security.md#who-may-connect)"
        ),
    )


def origin_ok(scope: Scope, allowed_origins: Sequence[str] | None) -> bool:
    """Whether the handshake's Origin header is allowed (see :func:`origin_refusal`)."""
    return origin_refusal(scope, allowed_origins) is None


async def refusal(
    scope: Scope,
    *,
    allowed_origins: Sequence[str] | None,
    require_authenticated: bool,
    authorize: Callable[[], Awaitable[bool]],
    handler_name: str,
) -> Refusal | None:
    """Origin, authentication and ``authorize()``, in that order; None admits,
    a :class:`Refusal` says why not (the caller sends and logs it)."""
    refused = origin_refusal(scope, allowed_origins)
    if refused is not None:
        return refused
    if require_authenticated and user_id_of(scope) is None:
        return Refusal(
            "anonymous",
            "authentication required",
            detail="the handler has require_authenticated and the scope's user is anonymous "
            "(no session cookie, an expired session, or websocket_app(auth=False))",
        )
    try:
        if await authorize():
            return None
    except Exception:
        logger.exception("authorize of %s raised; socket refused", handler_name)
        return Refusal("error", "server error", status=500, detail="authorize() raised (logged above)")
    return Refusal("authorize", "not authorized", detail="authorize() returned a false value")


async def over_user_limit(handler_name: str, user_id: str | None, limit: int | None) -> bool:
    """Whether the (registered) socket's user now has more than ``limit`` sockets."""
    if limit is None or user_id is None:
        return False
    return len(await get_registry().user_sockets(handler_name, user_id)) > limit
