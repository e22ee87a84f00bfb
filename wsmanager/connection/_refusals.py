"""Refused handshakes: what the client is told, and the line the log gets.

Every handshake wsmanager refuses is described by a :class:`Refusal`: its
``kind`` (``"origin"``, ``"anonymous"``, ``"authorize"``, ``"on_connect"``,
``"error"``, ``"registry"``, ``"no_route"``, ``"too_many"``,
``"resume_rate"``), the HTTP
``status`` or the close ``code`` that refuses it, a short ``reason`` meant for
the client, and a ``detail`` meant for the operator (what was allowed, what
to change). :func:`send_refusal` tells the client; :func:`log_refusal` tells
the log.

What the client sees, by server (docs/protocol.md, section 2):

* a refusal **before** the handshake completes is an HTTP response. Where the
  server offers the ASGI ``websocket.http.response`` extension (uvicorn's three
  implementations, hypercorn, granian: the scope's ``extensions``), it has
  the refusal's status (403, 404, 500, 503) and the reason as a ``text/plain``
  body. daphne (and so ``manage.py runserver``) offers no such extension:
  ASGI's only answer there is ``websocket.close``, which daphne turns into
  HTTP 403 with an empty body; the reason reaches the log only.
* a refusal **after** the handshake (``code`` set: the 4429 caps,
  ``RejectConnection(code=...)``) is a close frame with the code and the
  reason, on every server. Browsers can read only this kind: the WebSocket
  API shows a refused handshake as a close with code 1006, whatever the body.

The log line goes to the logger ``wsmanager.connection._refusals`` at WARNING, the level
that Python's last-resort handler prints to stderr when nothing configured
logging (uvicorn, hypercorn and granian configure only their own loggers,
and Django's default ``LOGGING`` leaves ``wsmanager`` alone), so a refusal is
visible with no ``LOGGING`` at all. Guarantees: at most one line per kind and
handler per :data:`~wsmanager.observe._logs.DEFAULT_INTERVAL` (60 s) in a process,
the next one saying how many were skipped (a client cannot flood the log by
being refused); what the client sent (an Origin) appears in ``repr`` form,
cut at :data:`MAX_ECHO` characters. Non-guarantees: lines of different
processes are not throttled together; a reason in a 403 body never reaches
a browser's script.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import _state
from ..observe._logs import LogThrottle

__all__ = ["MAX_ECHO", "Refusal", "echo", "http_status", "log_refusal", "reset", "send_refusal"]

logger = logging.getLogger("wsmanager.refusals")

#: Characters of a client's own value (an Origin header) quoted back in a reason.
MAX_ECHO = 100

#: The ASGI extension that lets an application answer a handshake with any HTTP response.
HTTP_RESPONSE_EXTENSION = "websocket.http.response"

_throttle = LogThrottle()


@dataclass(frozen=True)
class Refusal:
    """Why a handshake is refused; see the module docstring.

    ``code`` None: the handshake is answered with HTTP ``status``; a close code:
    it is accepted and closed at once with ``code`` and ``reason``.
    """

    kind: str
    reason: str
    status: int = 403
    code: int | None = None
    detail: str = ""


def echo(value: str | None) -> str:
    """A client-supplied value fit to quote in a reason or a log line: ``repr``, cut short."""
    if value is None:
        return "none"
    return repr(value) if len(value) <= MAX_ECHO else f"{value[:MAX_ECHO]!r}..."


async def send_refusal(scope: dict[str, Any], send: Any, refusal: Refusal) -> None:
    """Refuse a handshake that is not accepted yet (``refusal.code`` is None).

    With the ``websocket.http.response`` extension: HTTP ``status`` and the reason
    as the body. Without it: ``websocket.close`` (the server answers HTTP 403; the
    ``reason`` key is there for a server that would use it, none known does).
    """
    if HTTP_RESPONSE_EXTENSION in (scope.get("extensions") or {}):
        body = f"{refusal.reason}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]
        await send({"type": "websocket.http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "reason": refusal.reason})


def http_status(scope: dict[str, Any], refusal: Refusal) -> int:
    """The status the client gets for ``refusal`` (``code`` None): its own where the
    server offers ``websocket.http.response``, else 403 (what ``websocket.close`` means)."""
    return refusal.status if HTTP_RESPONSE_EXTENSION in (scope.get("extensions") or {}) else 403


def log_refusal(refusal: Refusal, scope: dict[str, Any], handler_name: str, *, exc_info: Any = None) -> bool:
    """One WARNING line on ``wsmanager.connection._refusals`` (throttled per kind and handler) saying
    what the client got and why; whether it was written."""
    answer = f"close {refusal.code}" if refusal.code is not None else f"HTTP {http_status(scope, refusal)}"
    where = f" ({handler_name})" if handler_name else ""
    detail = f"; {refusal.detail}" if refusal.detail else ""
    return _throttle.log(
        logger,
        f"{refusal.kind} {handler_name}",
        logging.WARNING,
        "wsmanager refused a WebSocket handshake to %s%s with %s: %s%s",
        echo(scope.get("path")),
        where,
        answer,
        refusal.reason,
        detail,
        exc_info=exc_info,
    )


def reset(clock: Callable[[], float] = time.monotonic) -> None:
    """Forget which refusals were logged lately, and read time from ``clock`` from now on
    (tests; :func:`wsmanager.testing.reset`)."""
    global _throttle
    _throttle = LogThrottle(clock=clock)


_state.owns(__name__, reset)
