"""How an ``invoke`` on a socket of another process reports its outcome.

The node of the calling process sends a ``wsmanager.invoke`` message to the
socket's node; that node runs the call and answers with a
``wsmanager.invoke_result`` message holding either ``result`` or ``error``.
This module turns the serving side's exception into that ``error`` (plain
JSON-able data, since channel layers serialise with msgpack) and back into
the same exception class on the calling side. Pure functions, no I/O.

Round trip guarantees: :class:`RemoteError` keeps its code, message and
data; :class:`InvokeTimeout` its timeout; :class:`ConnectionClosed` its close
code; :class:`SocketNotFound` its id. Any other exception arrives as an
:class:`InvokeError` whose detail is the text of the original (its class and
traceback stay in the serving process's log).
"""

from __future__ import annotations

from typing import Any

from ..exceptions import ConnectionClosed, InvokeError, InvokeTimeout, RemoteError, SocketNotFound

__all__ = ["error_of", "exception_of"]


def error_of(exc: BaseException) -> dict[str, Any]:
    """The ``error`` member of an invoke result, for ``exc`` raised while serving it."""
    if isinstance(exc, RemoteError):
        return {"kind": "remote", "code": exc.code, "message": exc.message, "data": exc.data}
    if isinstance(exc, InvokeTimeout):
        return {"kind": "timeout"}
    if isinstance(exc, SocketNotFound):
        return {"kind": "not_found"}
    if isinstance(exc, ConnectionClosed):
        return {"kind": "closed", "code": exc.code}
    return {"kind": "other", "message": str(exc)}


def exception_of(reply: dict[str, Any]) -> Exception | None:
    """The exception an invoke result stands for; None when it holds a result.

    ``reply`` carries ``socket``, ``method`` and ``timeout`` of the call
    besides ``error``.
    """
    error = reply.get("error")
    if error is None:
        return None
    sid, method = reply["socket"], reply["method"]
    kind = error.get("kind")
    if kind == "remote":
        return RemoteError(sid, method, error["code"], error["message"], error.get("data"))
    if kind == "timeout":
        return InvokeTimeout(sid, method, reply["timeout"])
    if kind == "not_found":
        return SocketNotFound(sid)
    if kind == "closed":
        return ConnectionClosed(sid, error.get("code"))
    return InvokeError(sid, method, error.get("message", "failed on the remote node"))
