"""Every exception wsmanager raises, under one root.

::

    WsManagerError                 (wsmanager_client.exceptions)
     ├── ConfigurationError        a WSMANAGER setting is wrong (also an ImproperlyConfigured)
     ├── SocketNotFound            no open socket has that id (in any process)
     │    └── SocketParked         the socket dropped and may resume: no connection now
     ├── ConnectionClosed          the socket closed while an operation waited on it (wsmanager_client)
     ├── DeliveryError             a frame could not be handed to the channel layer
     ├── RegistryUnavailable       the registry backend (e.g. Redis) cannot be reached
     ├── RejectConnection          raised by ``on_connect`` to refuse a socket
     ├── RpcError                  raised by ``@rpc`` methods, sent as a JSON-RPC error (wsmanager_client)
     └── InvokeError               a server-to-client ``invoke`` failed (wsmanager_client)
          ├── InvokeTimeout        no result arrived in time
          └── RemoteError          the client answered with a JSON-RPC error

The exceptions a client sees too (the root, ``ConnectionClosed``, ``RpcError``,
``InvokeError`` and its subclasses) are defined once, in the client
distribution's :mod:`wsmanager_client.exceptions`, and imported here: the
server depends on ``wsmanager-client``, so ``except wsmanager.RemoteError``
and ``except wsmanager_client.RemoteError`` name the same class. This module
defines the server's own, which need Django.

Exceptions carry the facts (socket id, codes, method names) as attributes and
print readably. Every one pickles with its attributes (a cross-process
``invoke`` and process pools send them), though most take those facts as
constructor arguments that ``Exception`` alone would not restore.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from wsmanager_client.exceptions import (
    ConnectionClosed,
    InvokeError,
    InvokeTimeout,
    RemoteError,
    RpcError,
    WsManagerError,
)

__all__ = [
    "ConfigurationError",
    "ConnectionClosed",
    "DeliveryError",
    "InvokeError",
    "InvokeTimeout",
    "RegistryUnavailable",
    "RejectConnection",
    "RemoteError",
    "RpcError",
    "SocketNotFound",
    "SocketParked",
    "WsManagerError",
]


class ConfigurationError(WsManagerError, ImproperlyConfigured):
    """A ``WSMANAGER`` setting (or a handler attribute) is invalid."""


class SocketNotFound(WsManagerError, LookupError):
    """No open socket with this id is known to the registry."""

    def __init__(self, socket_id: str, handler_name: str | None = None) -> None:
        self.socket_id = socket_id
        self.handler_name = handler_name
        where = f" in handler {handler_name!r}" if handler_name else ""
        super().__init__(f"no open socket with id {socket_id!r}{where}")


class SocketParked(SocketNotFound):
    """The socket dropped and may resume within its recovery window: it has no
    connection now. ``invoke`` on it and raw frames sent to it by id raise this
    at once; notifications to it are kept and delivered when it resumes
    (see docs/protocol.md, "Connection recovery")."""

    def __init__(self, socket_id: str, handler_name: str | None = None) -> None:
        super().__init__(socket_id, handler_name)
        self.args = (f"socket {socket_id!r} is parked (dropped, may resume)",)


class DeliveryError(WsManagerError):
    """A frame could not be handed over for delivery (e.g. the channel layer is full)."""


class RegistryUnavailable(WsManagerError):
    """The registry backend could not be reached; the operation did not happen."""


class RejectConnection(WsManagerError):
    """Raise from ``on_connect`` to refuse the socket.

    With ``code=None`` the handshake is refused (the client sees HTTP 403 and
    no WebSocket is opened). With a close code (e.g. 4003) the socket is
    accepted and closed at once with that code and reason, so that browser
    clients, which cannot read a refused handshake, can see why.
    """

    def __init__(self, reason: str = "", code: int | None = None) -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason or "connection rejected")
