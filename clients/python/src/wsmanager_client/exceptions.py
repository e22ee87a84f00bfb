"""The exceptions a client sees, under the root that every wsmanager exception shares.

::

    WsManagerError                  root of every exception of wsmanager and wsmanager_client
     ├── ConnectionClosed           the connection closed while an operation waited on it: .code
     │    └── NotConnected          never sent: .reason "closed", "fail-fast", "queue-full", "not-queued"
     │         └── HandshakeRefused the server answered the handshake with an HTTP status: .status, .detail
     ├── RpcError                   raised by a method to answer its caller with a JSON-RPC error
     ├── InvokeError                a call did not produce a result
     │    ├── InvokeTimeout         no result arrived in time (also a TimeoutError)
     │    └── RemoteError           the peer answered with a JSON-RPC error: .code, .message, .data
     └── LimitExceeded              the server sent more than the client accepts: .limit, .maximum

These classes are defined once, here, and the server (the ``wsmanager``
distribution, which depends on this one) imports them: ``wsmanager.RemoteError``
*is* ``wsmanager_client.RemoteError``, and the server's own exceptions
(``wsmanager.exceptions``: ``ConfigurationError``, ``SocketNotFound``, ...)
derive from the same :class:`WsManagerError`. Nothing here imports Django.

Exceptions carry the facts (socket id, codes, method names) as attributes and
compute their message from them. Every one pickles with its attributes (a
cross-process ``invoke`` and process pools send them), though most take those
facts as constructor arguments that ``Exception`` alone would not restore.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "NOT_CONNECTED_REASONS",
    "ConnectionClosed",
    "HandshakeRefused",
    "InvokeError",
    "InvokeTimeout",
    "LimitExceeded",
    "NotConnected",
    "RemoteError",
    "RpcError",
    "WsManagerError",
]


def _rebuild(cls: type[WsManagerError], args: tuple[Any, ...]) -> WsManagerError:
    """Unpickle without calling ``cls.__init__``; the attributes come back as state."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    return error


class WsManagerError(Exception):
    """Root of every exception raised by wsmanager (the server) and wsmanager_client."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args), dict(self.__dict__))


class ConnectionClosed(WsManagerError):
    """The socket closed while an operation (an ``invoke``, a send) waited on it."""

    def __init__(self, socket_id: str, code: int | None = None) -> None:
        self.socket_id = socket_id
        self.code = code
        suffix = f" (close code {code})" if code is not None else ""
        super().__init__(f"socket {socket_id!r} closed{suffix}")


NOT_CONNECTED_REASONS: Final = {
    "closed": "the client is closed",
    "fail-fast": "fail_fast is set",
    "queue-full": "the queue is full",
    "not-queued": "calls are not queued",
    "refused": "the server refused the handshake",
}


class NotConnected(ConnectionClosed):
    """A call or notification (or ``connect()``) was neither sent nor queued: nothing reached the server.

    ``reason`` is ``"closed"`` (the client is closed or gave up),
    ``"fail-fast"``, ``"queue-full"``, ``"not-queued"`` (``queue_calls`` is
    off, or ``queue=False`` for this call) or ``"refused"`` (the client gave
    up after the server refused the handshake: a :class:`HandshakeRefused`).
    ``detail`` says more where the client knows more: after it gave up, how
    its last attempt ended (``"connect timeout"``, ``"cannot connect: ..."``).
    A subclass of :class:`ConnectionClosed`, so one ``except
    ConnectionClosed`` covers every call that did not get an answer because
    of the connection.
    """

    def __init__(self, socket_id: str, method: str, reason: str, detail: str = "") -> None:
        if reason not in NOT_CONNECTED_REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        super().__init__(socket_id)
        self.method = method
        self.reason = reason
        self.detail = detail
        why = NOT_CONNECTED_REASONS[reason] + (f": {detail}" if detail else "")
        if method == "connect":
            self.args = (f"could not connect because {why}",)
        else:
            self.args = (f"not connected: {method!r} was not sent because {why}",)


class HandshakeRefused(NotConnected):
    """The server answered the WebSocket handshake with HTTP ``status`` (403, 404, ...) instead of 101.

    ``detail`` is the server's reason when its answer carried one (a
    ``text/plain`` body, or the ``reason``, ``detail``, ``error`` or
    ``message`` member of a JSON object), else ``""``; at most 500
    characters, on one line. HTML pages are not read.
    """

    def __init__(self, socket_id: str, method: str, status: int, detail: str = "") -> None:
        self.status = status
        super().__init__(socket_id, method, "refused", f"HTTP {status}" + (f": {detail}" if detail else ""))
        self.detail = detail


class RpcError(WsManagerError):
    """A JSON-RPC error that user code raises on purpose.

    Raised inside a server's ``@rpc`` method (or a client's handler), it is
    sent to the caller as the error object ``{"code": code, "message":
    message, "data": data}`` and the connection stays open. ``data`` is
    omitted when it is ``None``. Use codes outside -32768..-32000 (reserved
    by JSON-RPC) for application errors; the library's own server errors are
    listed in docs/protocol.md.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"[{code}] {message}")


class InvokeError(WsManagerError):
    """A call (the server's ``invoke``, the client's ``invoke``) did not produce a result."""

    def __init__(self, socket_id: str, method: str, detail: str) -> None:
        self.socket_id = socket_id
        self.method = method
        super().__init__(f"invoke {method!r} on socket {socket_id!r}: {detail}")


class InvokeTimeout(InvokeError, TimeoutError):
    """The peer did not answer a call within its timeout."""

    def __init__(self, socket_id: str, method: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(socket_id, method, f"no result within {timeout:g}s")


class RemoteError(InvokeError):
    """The peer answered a call with a JSON-RPC error object."""

    def __init__(self, socket_id: str, method: str, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(socket_id, method, f"answered with error [{code}] {message}")


class LimitExceeded(WsManagerError):
    """The server sent more than the client accepts; the client did ``action`` about it.

    ``limit`` names the client's option (``"max_message_size"``,
    ``"max_batch_size"``, ``"max_concurrent_handlers"``), ``maximum`` its
    value. Passed to ``on_error`` (never raised to a caller); the counts are
    in ``Client.stats``.
    """

    def __init__(self, limit: str, maximum: int, action: str) -> None:
        self.limit = limit
        self.maximum = maximum
        self.action = action
        super().__init__(f"the server went over {limit} ({maximum}): {action}")
