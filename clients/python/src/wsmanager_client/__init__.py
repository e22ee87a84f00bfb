"""wsmanager_client: a JSON-RPC 2.0 peer of a wsmanager server over ``websockets``.

Its own distribution (``pip install wsmanager-client``), which needs only
``websockets``: no Django, no Channels. It behaves like the browser client
(docs/client.md) with times in seconds; the guide is docs/python-client.md.

::

    async with connect("ws://127.0.0.1:8000/ws/chat/lobby/?name=ann") as client:
        client.on("message", lambda **m: print(m["name"], m["text"]))
        print(await client.invoke("who"))

Exceptions a call can raise (all under :class:`WsManagerError`)::

    RemoteError             the server answered with a JSON-RPC error: .code, .message, .data
    InvokeTimeout           no answer within the call's timeout (also a TimeoutError)
    ConnectionClosed        the connection dropped before the answer: .code
     └── NotConnected       never sent: .reason "closed", "fail-fast", "queue-full", "not-queued", "refused"
          └── HandshakeRefused  the server answered the handshake with HTTP .status (.detail: its reason)

A handler given to :meth:`Client.on` raises :class:`RpcError` to answer the
server with that error. What the server sends is bounded (``max_message_size``,
``max_batch_size``, ``max_concurrent_handlers``); what goes over a bound is
reported to ``on_error`` as a :class:`LimitExceeded` and counted in
:attr:`Client.stats`.

With a server that offers connection recovery, an abrupt drop is followed
by a resume of the same session (same id, missed notifications replayed,
duplicates dropped): :class:`Recovered` or :class:`RecoveryFailed` tells the
app which (:mod:`.recovery`; ``recover=False`` turns it off).

Topics (:mod:`.topics`)::

    sub = await client.subscribe("tasks", lambda p: print(p.event, p.data), since=position)
    ...
    await sub.unsubscribe()

The subscription is renewed from its position after every reconnection;
publications arrive once and in order; :class:`Unrecovered` says when what
was missed cannot be replayed.

The JSON-RPC core, :mod:`wsmanager_client.protocol`, and the exceptions,
:mod:`wsmanager_client.exceptions`, are shared with the server, which imports
them from here. Importing this package is cheap: the client's classes (and
``websockets``) are imported on first use of one of the names below, so the
server, which needs only those two modules, never loads them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .exceptions import (
    ConnectionClosed,
    HandshakeRefused,
    InvokeTimeout,
    LimitExceeded,
    NotConnected,
    RemoteError,
    RpcError,
    WsManagerError,
)

if TYPE_CHECKING:
    from .connection import Client, Connecting, connect
    from .events import Closed, Connected, Reconnected, Reconnecting, Recovered, RecoveryFailed
    from .limits import Stats
    from .policy import Options, State, backoff_delay, is_final_close_code
    from .topics import Position, Publication, Subscription, Unrecovered

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Closed",
    "Connected",
    "Connecting",
    "ConnectionClosed",
    "HandshakeRefused",
    "InvokeTimeout",
    "LimitExceeded",
    "NotConnected",
    "Options",
    "Position",
    "Publication",
    "Reconnected",
    "Reconnecting",
    "Recovered",
    "RecoveryFailed",
    "RemoteError",
    "RpcError",
    "State",
    "Stats",
    "Subscription",
    "Unrecovered",
    "WsManagerError",
    "backoff_delay",
    "connect",
    "is_final_close_code",
]

# Where each lazily imported name lives.
_LAZY: dict[str, str] = {
    "Client": ".connection",
    "Connecting": ".connection",
    "connect": ".connection",
    "Closed": ".events",
    "Connected": ".events",
    "Reconnected": ".events",
    "Reconnecting": ".events",
    "Recovered": ".events",
    "RecoveryFailed": ".events",
    "Stats": ".limits",
    "Options": ".policy",
    "State": ".policy",
    "backoff_delay": ".policy",
    "is_final_close_code": ".policy",
    "Position": ".topics",
    "Publication": ".topics",
    "Subscription": ".topics",
    "Unrecovered": ".topics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
