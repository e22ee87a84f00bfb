"""Everything the client knows about ``websockets``: opening a socket and reading how it ended.

One socket at a time, no reconnection here (that is the connection loop's
job). Failures to open become a :class:`Loss` with close code 1006, as a
browser reports them, and a reason saying what happened; a refused handshake
also keeps its HTTP status and the server's reason (:func:`refusal_detail`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

try:
    from websockets.asyncio.client import ClientConnection
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed as WsConnectionClosed
    from websockets.exceptions import InvalidStatus, InvalidURI
    from websockets.http11 import Response as HttpResponse
    from websockets.protocol import State as WsState
    from websockets.typing import Origin, Subprotocol
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("wsmanager_client needs websockets>=13: pip install wsmanager-client") from exc

from .policy import ABNORMAL

__all__ = [
    "CLOSE_TIMEOUT",
    "ClientConnection",
    "Loss",
    "WsConnectionClosed",
    "abort",
    "ended",
    "is_open",
    "open_socket",
    "refusal_detail",
]

CLOSE_TIMEOUT = 5.0  # seconds close() waits for the closing handshake


@dataclass(frozen=True, slots=True)
class Loss:
    """How one attempt or connection ended.

    ``status`` is the HTTP status of a refused handshake (``None`` otherwise)
    and ``detail`` the server's reason given with it ("" when none).
    """

    code: int
    reason: str
    was_clean: bool = False
    opened: bool = False
    final: bool = False  # no retry whatever the policy (a URL that cannot work)
    error: BaseException | None = None
    status: int | None = None
    detail: str = ""
    sent: bool = False  # the close frame that ended it was the client's own (e.g. 1009)


DETAIL_LIMIT: Final = 500  # characters of the server's reason kept
_DETAIL_KEYS: Final = ("reason", "detail", "error", "message")


def _one_line(text: str) -> str:
    """``text`` on one line, printable characters only, at most :data:`DETAIL_LIMIT` of them."""
    line = "".join(ch for ch in " ".join(text.split()) if ch.isprintable())
    return line[:DETAIL_LIMIT]


def _json_reason(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _DETAIL_KEYS:
            member = value.get(key)
            if isinstance(member, str):
                return member
            if isinstance(member, dict) and isinstance(member.get("message"), str):
                return str(member["message"])
    return ""


def refusal_detail(response: HttpResponse) -> str:
    """The server's reason for refusing the handshake, from the body of its answer ("" when none).

    A ``text/plain`` body (or one without a content type that is not HTML) is
    the reason; of a JSON body, a string, or the first string member of
    ``reason``, ``detail``, ``error`` or ``message`` (or ``error.message``).
    Anything else (an HTML error page, bytes that are not UTF-8) gives "".
    The result is one line of printable characters, at most 500 of them.
    """
    body = bytes(response.body or b"")[: 64 * 1024]
    if not body.strip():
        return ""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return _one_line(_json_reason(json.loads(text)))
        except (ValueError, RecursionError):
            return ""
    if content_type == "text/plain" or (not content_type and not text.lstrip().startswith("<")):
        return _one_line(text)
    return ""


async def open_socket(
    url: str,
    origin: str | None,
    headers: Mapping[str, str],
    connect_timeout: float | None,
    max_message_size: int | None,
    subprotocols: list[str] | None = None,
) -> ClientConnection | Loss:
    """Open one WebSocket (TCP and handshake within ``connect_timeout``), or say why not.

    ``websockets``' own ping frames are off (the heartbeat is ``rpc.ping``, as
    in the browser). A message over ``max_message_size`` bytes (``None``: no
    limit) fails the connection with 1009 once its frame header announces it
    (or its fragments add up past it), before the payload is read.
    """
    try:
        return await ws_connect(
            url,
            origin=Origin(origin) if origin is not None else None,
            additional_headers=dict(headers),
            open_timeout=connect_timeout,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
            max_size=max_message_size,
            subprotocols=[Subprotocol(name) for name in subprotocols] if subprotocols else None,
        )
    except (InvalidURI, ValueError, TypeError) as exc:  # will not get better by retrying
        return Loss(ABNORMAL, f"cannot open: {exc}", final=True, error=exc)
    except TimeoutError as exc:
        return Loss(ABNORMAL, "connect timeout", error=exc)
    except InvalidStatus as exc:  # e.g. 403: Origin, authentication, or the registry is down
        status, detail = exc.response.status_code, refusal_detail(exc.response)
        reason = f"handshake refused: HTTP {status}" + (f": {detail}" if detail else "")
        return Loss(ABNORMAL, reason, error=exc, status=status, detail=detail)
    except Exception as exc:  # refused, reset, DNS, bad handshake: the server may come back
        return Loss(ABNORMAL, f"cannot connect: {exc or type(exc).__name__}", error=exc)


def is_open(ws: ClientConnection) -> bool:
    return ws.state is WsState.OPEN


def ended(ws: ClientConnection, forced: tuple[int, str] | None) -> Loss:
    """How a connection that was open ended: its close frame, or 1006 (``forced``: our own drop).

    When the client closed first (``websockets`` failed the connection: 1009
    for a message over the size limit, 1002 or 1007 for bad frames), the
    code and reason are the ones it sent, whatever the server answered.
    """
    if forced is not None:
        return Loss(forced[0], forced[1], opened=True)
    sent, rcvd = ws.protocol.close_sent, ws.protocol.close_rcvd
    clean = rcvd is not None and sent is not None
    if sent is not None and not ws.protocol.close_rcvd_then_sent:
        return Loss(sent.code, sent.reason, clean, opened=True, sent=True)
    return Loss(ws.close_code or ABNORMAL, ws.close_reason or "", clean, opened=True)


def abort(ws: ClientConnection) -> None:
    """Drop the TCP connection at once, without a closing handshake (the peer looks dead)."""
    if ws.transport is not None:
        ws.transport.abort()
