"""Server adapters: what wsmanager does beyond ASGI on one particular server
(``base``, ``daphne``, ``uvicorn``, ``hypercorn``; the detection and the entry points here).

ASGI hides the server, and wsmanager means to run the same on daphne,
uvicorn (``websockets-sansio``, its default, ``websockets`` or ``wsproto``),
hypercorn and granian. Where one
of them needs help, the help lives here, in one :class:`ServerAdapter` per
server, and nowhere else:

* **daphne** (Twisted and autobahn) refuses every close code but 1000 and
  3000-4999 through ASGI, and drops the reason of every ASGI close;
  :func:`send_close_frame` writes such closes on its protocol directly.
  daphne also buffers without bound, so :func:`send_backlog_probe` reads the
  TCP transport's write buffer (the only place the slow-client limit can
  look on daphne).
* **uvicorn** (all three implementations): once the handshake is complete, a
  frame for an idle socket is written at once on the server's protocol
  (:func:`direct_writer`: frame bytes built once per broadcast and written
  to each transport as ``websockets.broadcast`` does, or the sans-I/O
  protocol's ``send_text``, ``write_frame_sync``, wsproto's ``conn.send``,
  then ``transport.write``), while the
  transport holds at most :data:`DIRECT_LIMIT` bytes; otherwise through the
  awaited ASGI ``send``, which waits for the transport. Its transport buffer
  counts toward the send backlog (:func:`send_backlog_probe`). A broadcast
  then costs no coroutine per socket.
* **uvicorn with its ``websockets`` implementation** sends ASGI closes as
  they are, but its ``send`` of the close waits for the whole closing
  handshake (up to 10 s when the client does not answer, e.g. a flooding
  client whose frames fill the server's queue); :class:`UvicornWebsocketsAdapter`
  sends such closes in a task of their own, so that the socket leaves the
  registry at once instead of after the handshake.
* **A write after the client's close frame** (the application not yet told):
  daphne's autobahn raises ``Disconnected`` until the TCP connection is
  gone, uvicorn raises ``ClientDisconnected`` (an ``OSError``, as ASGI
  says), hypercorn drops the frame, and granian's ``send`` may never
  return. :func:`connection_ended` tells such a failure from a frame the
  server refused, so that the writer leaves the close code to the server's
  ``websocket.disconnect`` (the peer's) instead of choosing 1011.
* **hypercorn** (0.18) reports every close the client starts as 1006, the
  code of a lost connection (pgjones/hypercorn#127): a client that closes on
  purpose says ``rpc.close`` first (docs/protocol.md).
* **Compression** (permessage-deflate) is negotiated by the server, which
  ASGI gives the application no say in. For a handler with
  ``compression = False``, :func:`refuse_compression` has the handshake offer
  none: uvicorn's sans-I/O and legacy ``websockets`` protocols get an empty
  list of extensions, its ``wsproto`` one a copy of the config that says no,
  and hypercorn's handshake forgets the client's offer; daphne and granian
  never compress.
* **uvicorn with ``websockets-sansio`` or ``wsproto``, hypercorn, granian**
  send ASGI closes with their code and reason as they are, at once.
  granian's adapter is the plain one, and hypercorn's does nothing else.
  uvicorn's ``websockets-sansio`` and ``wsproto`` implementations and granian
  report a connection lost without a close frame as 1005 rather than 1006
  (:func:`lost_codes`, for connection recovery).

The server is detected from the ``send`` callable the server hands to the
application (the package that defines it, looked up through Channels'
middleware wrappers), once per socket, at the handshake and at a close;
never per frame. Guarantees: a send this module does not recognise gets the
plain adapter (no probe, closes go through ASGI); nothing here raises on an
unknown server. Non-guarantee: daphne's probe and close writer read
daphne's and autobahn's private attributes (checked to exist before use);
a daphne release that renames them makes both unavailable, which is safe
(the ASGI path is used) but loses the reason and the limit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from .. import _state
from ._base import DIRECT_LIMIT, NamedAdapter, ServerAdapter, unwrap
from ._daphne import DaphneAdapter, call_when_running
from ._hypercorn import HypercornAdapter
from ._uvicorn import UvicornAdapter, UvicornSansioAdapter, UvicornWebsocketsAdapter

__all__ = [
    "DIRECT_LIMIT",
    "DaphneAdapter",
    "HypercornAdapter",
    "ServerAdapter",
    "UvicornAdapter",
    "UvicornSansioAdapter",
    "UvicornWebsocketsAdapter",
    "adapter_for",
    "call_when_running",
    "connection_ended",
    "direct_writer",
    "hypercorn_worker_shutdown",
    "lost_codes",
    "refuse_compression",
    "send_backlog_probe",
    "send_close",
    "send_close_frame",
    "server_name",
]

logger = logging.getLogger(__name__)


def _defining_module(send: Any) -> str:
    """The module that defines the server's ``send`` ("" when unknown)."""
    send = unwrap(send)
    if isinstance(send, functools.partial):
        send = send.func
    module = getattr(send, "__module__", None)
    if not isinstance(module, str) or not module:
        owner = getattr(send, "__self__", None)
        module = type(owner if owner is not None else send).__module__
    return module or ""


_PLAIN: dict[str, ServerAdapter] = {
    "uvicorn": UvicornAdapter(),  # its wsproto implementation
    "hypercorn": HypercornAdapter(),
    "granian": NamedAdapter("granian", frozenset({1005, 1006}), compresses=False),
}
_DAPHNE = DaphneAdapter()
_UNKNOWN = ServerAdapter()
_BY_MODULE: dict[str, ServerAdapter] = {
    "uvicorn.protocols.websockets.websockets_impl": UvicornWebsocketsAdapter(),
    "uvicorn.protocols.websockets.websockets_sansio_impl": UvicornSansioAdapter(),
}


def adapter_for(send: Any) -> ServerAdapter:
    """The adapter of the server behind ``send`` (the plain one when it is not recognised)."""
    module = _defining_module(send)
    package = module.partition(".")[0]
    if package == "daphne":
        return _DAPHNE
    return _BY_MODULE.get(module) or _PLAIN.get(package, _UNKNOWN)


def server_name(send: Any) -> str:
    """The server serving a connection: daphne, uvicorn, hypercorn, granian, or "asgi" (unknown)."""
    return adapter_for(send).name


def lost_codes(send: Any) -> frozenset[int]:
    """The close codes by which the server behind ``send`` reports a lost connection."""
    return adapter_for(send).lost_codes


def connection_ended(send: Any, exc: BaseException) -> bool:
    """Whether ``exc``, raised by the server's ``send``, means the connection is no
    longer open (a close frame was received or sent, or it was lost): the server
    then reports its end, with the code the peer or the server chose, in a
    ``websocket.disconnect``. False: the server refused this frame on an open
    connection (daphne's 1 MiB limit, a lone surrogate), or cannot say."""
    return adapter_for(send).connection_ended(send, exc)


def direct_writer(send: Any) -> Callable[[dict[str, Any]], bool] | None:
    """The server's way to write a frame at once, where it has one (uvicorn's three
    implementations); None elsewhere."""
    return adapter_for(send).direct_writer(send)


def refuse_compression(send: Any) -> bool:
    """Before ``websocket.accept``: have the server negotiate no permessage-deflate for this
    socket (a handler's ``compression = False``, docs/compression.md). True: it will not be
    compressed. False: the server is not one this module knows, and gives no way to refuse
    it (logged once per server, at WARNING)."""
    adapter = adapter_for(send)
    if adapter.refuse_compression(send):
        return True
    name = _defining_module(send)
    if name not in _warned:
        _warned.add(name)
        logger.warning("compression = False: the server behind %s cannot be told not to compress", name)
    return False


#: The servers :func:`refuse_compression` warned about (once each).
_warned: set[str] = set()
_state.owns(__name__, _warned.clear)


def send_backlog_probe(send: Any) -> Callable[[], int] | None:
    """The server's backlog probe for this socket, or None where it offers none.

    ASGI gives no way to see a client's backlog; only daphne's is read (see
    :class:`DaphneAdapter`).
    """
    return adapter_for(send).backlog_probe(send)


def send_close_frame(send: Any, code: int, reason: str | None) -> bool:
    """Close the server's way where it needs one; False: the caller sends the ASGI close itself.

    daphne: the frame is written on its protocol (any code, with the
    reason). uvicorn's ``websockets`` implementation: the ASGI close is sent
    in a task of its own. Everyone else: False.
    """
    return adapter_for(send).close_frame(send, code, reason)


def hypercorn_worker_shutdown() -> tuple[Callable[[], bool], float] | None:
    """In a hypercorn worker process: (is the shutdown under way?, its graceful timeout); else None.

    hypercorn's main process takes SIGTERM and tells its workers through a
    multiprocessing event, which each worker polls every 0.1 s; the worker
    itself gets no signal. On that event it stops listening, gives its
    connections ``graceful_timeout`` seconds (3 by default) to end, then
    cancels them (the clients see 1011 with no reason). The event and the
    timeout are the keyword arguments hypercorn started the worker process
    with (``multiprocessing.current_process()``, private attributes; None
    when they are not there).
    """
    import multiprocessing

    process = multiprocessing.current_process()
    target = getattr(process, "_target", None)
    kwargs = getattr(process, "_kwargs", None)
    if not isinstance(kwargs, dict) or not str(getattr(target, "__module__", "")).startswith("hypercorn"):
        return None
    event = kwargs.get("shutdown_event")
    is_set = getattr(event, "is_set", None)
    if not callable(is_set):
        return None
    grace = getattr(kwargs.get("config"), "graceful_timeout", 3.0)
    return is_set, float(grace)


async def send_close(send: Any, code: int | None, reason: str | None, label: str = "") -> None:
    """Send ``websocket.close`` with ``code`` and ``reason`` through ``send``; never raises.

    Codes go out as plain ints (autobahn refuses an IntEnum). daphne
    refuses codes other than 1000 and 3000-4999 through ASGI, and drops the
    reason of every ASGI close; such closes are written on its protocol
    directly (:func:`send_close_frame`), so the client sees both. A close
    that cannot be sent at all is logged: the caller releases the socket
    whatever happens.
    """
    code = None if code is None else int(code)
    try:
        if code is not None and reason and send_close_frame(send, code, reason):
            return
        message: dict[str, Any] = {"type": "websocket.close"}
        if code is not None:
            message["code"] = code
        if reason:
            message["reason"] = reason
        await send(message)
    except Exception as exc:
        try:
            written = code is not None and send_close_frame(send, code, reason)
        except Exception:
            written = False
        if not written:
            logger.warning("socket %s: close %s could not be sent (%r)", label, code, exc)
