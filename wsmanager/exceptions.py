"""Every exception wsmanager raises, under one root.

::

    WsManagerError
     ├── ConfigurationError        a WSMANAGER setting is wrong (also an ImproperlyConfigured)
     ├── SocketNotFound            no open socket has that id (in any process)
     ├── ConnectionClosed          the socket closed while an operation waited on it
     ├── DeliveryError             a frame could not be handed to the channel layer
     ├── RegistryUnavailable       the registry backend (e.g. Redis) cannot be reached
     ├── RejectConnection          raised by ``on_connect`` to refuse a socket
     ├── RpcError                  raised by ``@rpc`` methods: sent to the caller as a JSON-RPC error
     └── InvokeError               a server-to-client ``invoke`` failed
          ├── InvokeTimeout        no result arrived in time
          └── RemoteError          the client answered with a JSON-RPC error

Exceptions carry the facts (socket id, codes, method names) as attributes and
print readably. Every one pickles with its attributes (a cross-process
``invoke`` and process pools send them), though most take those facts as
constructor arguments that ``Exception`` alone would not restore.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

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


def _rebuild(cls: type[WsManagerError], args: tuple[Any, ...]) -> WsManagerError:
    """Unpickle without calling ``cls.__init__``; the attributes come back as state."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    return error


class WsManagerError(Exception):
    """Root of every exception raised by wsmanager."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args), dict(self.__dict__))


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


class ConnectionClosed(WsManagerError):
    """The socket closed while an operation (an ``invoke``, a send) waited on it."""

    def __init__(self, socket_id: str, code: int | None = None) -> None:
        self.socket_id = socket_id
        self.code = code
        suffix = f" (close code {code})" if code is not None else ""
        super().__init__(f"socket {socket_id!r} closed{suffix}")


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


class RpcError(WsManagerError):
    """A JSON-RPC error that user code raises on purpose.

    Raised inside an ``@rpc`` method, it is sent to the caller as the error
    object ``{"code": code, "message": message, "data": data}`` and the
    connection stays open. ``data`` is omitted when it is ``None``.
    Use codes outside -32768..-32000 (reserved by JSON-RPC) for application
    errors; the library's own server errors are listed in docs/protocol.md.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"[{code}] {message}")


class InvokeError(WsManagerError):
    """A server-to-client ``invoke`` did not produce a result."""

    def __init__(self, socket_id: str, method: str, detail: str) -> None:
        self.socket_id = socket_id
        self.method = method
        super().__init__(f"invoke {method!r} on socket {socket_id!r}: {detail}")


class InvokeTimeout(InvokeError, TimeoutError):
    """The client did not answer an ``invoke`` within its timeout."""

    def __init__(self, socket_id: str, method: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(socket_id, method, f"no result within {timeout:g}s")


class RemoteError(InvokeError):
    """The client answered an ``invoke`` with a JSON-RPC error object."""

    def __init__(
        self, socket_id: str, method: str, code: int, message: str, data: Any = None
    ) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(socket_id, method, f"client error [{code}] {message}")
