"""The Python client: a JSON-RPC 2.0 peer of a wsmanager server over ``websockets``.

Install it with the ``client`` extra (``pip install 'wsmanager[client]'``).
It needs no Django settings: it imports only the leaf modules
:mod:`wsmanager.protocol` and :mod:`wsmanager.exceptions`, so it runs in any
Python process, and behaves like the browser client (docs/client.md) with
times in seconds. The guide is docs/python-client.md.

::

    async with connect("ws://127.0.0.1:8000/ws/chat/lobby/?name=ann") as client:
        client.on("message", lambda **m: print(m["name"], m["text"]))
        print(await client.invoke("who"))

Exceptions a call can raise (all under :class:`~wsmanager.exceptions.WsManagerError`)::

    RemoteError         the server answered with a JSON-RPC error: .code, .message, .data
    InvokeTimeout       no answer within the call's timeout (also a TimeoutError)
    ConnectionClosed    the connection dropped before the answer: .code
     └── NotConnected   never sent: .reason "closed", "fail-fast", "queue-full" or "not-queued"

A handler given to :meth:`Client.on` raises :class:`RpcError` to answer the
server with that error.

With a server that offers connection recovery, an abrupt drop is followed
by a resume of the same session (same id, missed notifications replayed,
duplicates dropped): :class:`Recovered` or :class:`RecoveryFailed` tells the
app which (:mod:`.recovery`; ``recover=False`` turns it off).
"""

from ..exceptions import ConnectionClosed, InvokeTimeout, RemoteError, RpcError, WsManagerError
from .calls import NotConnected
from .connection import Client, Connecting, connect
from .events import Closed, Connected, Reconnected, Reconnecting, Recovered, RecoveryFailed
from .policy import Options, State, backoff_delay, is_final_close_code

__all__ = [
    "Client",
    "Closed",
    "Connected",
    "Connecting",
    "ConnectionClosed",
    "InvokeTimeout",
    "NotConnected",
    "Options",
    "Reconnected",
    "Reconnecting",
    "Recovered",
    "RecoveryFailed",
    "RemoteError",
    "RpcError",
    "State",
    "WsManagerError",
    "backoff_delay",
    "connect",
    "is_final_close_code",
]
