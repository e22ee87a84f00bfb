"""Admission: whether a client may open a socket to a handler.

Checked in this order during the handshake, before the socket has an id or
a registry entry, so a refused client leaves nothing behind:

1. the Origin header against the handler's ``allowed_origins`` (else
   ``WSMANAGER["ALLOWED_ORIGINS"]``, else the site's ``ALLOWED_HOSTS``; see
   :mod:`wsmanager.origin`);
2. ``require_authenticated``: anonymous users are refused;
3. the handler's ``authorize()`` hook; an exception in it refuses too (and
   is logged).

Each refusal answers the handshake with HTTP 403 and says nothing more to the
client; the reason is logged at INFO on ``wsmanager.handler``.

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

from .conf import get_settings
from .origin import default_allowed_origins, origin_allowed, origin_of, target_of
from .registry import get_registry

__all__ = ["admitted", "origin_ok", "over_user_limit", "user_id_of"]

logger = logging.getLogger("wsmanager.handler")

Scope = dict[str, Any]


def user_id_of(scope: Scope) -> str | None:
    """The authenticated user's primary key as a string; None for anonymous or no user."""
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.pk)
    return None


def origin_ok(scope: Scope, allowed_origins: Sequence[str] | None) -> bool:
    """Whether the handshake's Origin header is allowed by ``allowed_origins``
    (None: ``WSMANAGER["ALLOWED_ORIGINS"]``, else the site's ``ALLOWED_HOSTS``)."""
    conf = get_settings()
    allowed = allowed_origins
    if allowed is None:
        allowed = conf.allowed_origins
    if allowed is None:
        allowed = default_allowed_origins()
    origin = origin_of(scope.get("headers") or [])
    return origin_allowed(origin, allowed, target_of(scope), require=conf.require_origin)


async def admitted(
    scope: Scope,
    *,
    allowed_origins: Sequence[str] | None,
    require_authenticated: bool,
    authorize: Callable[[], Awaitable[bool]],
    handler_name: str,
) -> bool:
    """Origin, authentication and ``authorize()``, in that order; False refuses."""
    path = scope.get("path")
    if not origin_ok(scope, allowed_origins):
        logger.info("refusing socket to %s: origin not allowed", path)
        return False
    if require_authenticated and user_id_of(scope) is None:
        logger.info("refusing anonymous socket to %s", path)
        return False
    try:
        return bool(await authorize())
    except Exception:
        logger.exception("authorize of %s raised; socket refused", handler_name)
        return False


async def over_user_limit(handler_name: str, user_id: str | None, limit: int | None) -> bool:
    """Whether the (registered) socket's user now has more than ``limit`` sockets."""
    if limit is None or user_id is None:
        return False
    return len(await get_registry().user_sockets(handler_name, user_id)) > limit
