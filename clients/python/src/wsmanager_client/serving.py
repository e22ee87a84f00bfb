"""Serving the server's calls and notifications: the handlers of ``client.on()``.

No I/O here either: :meth:`Handlers.answer` takes the server's requests (and
the invalid items) of one decoded frame and returns the text to send back, or
``None`` when nothing must be sent.

Rules (docs/python-client.md, "Answering the server"):

* Positional params arrive as arguments, named params as keyword arguments.
  A handler may be a plain function or a coroutine function; its return value
  (``None`` included) is the result.
* Params that do not bind to the handler's signature answer -32602 (the
  handler is not called); ``RpcError(code, message, data)`` answers exactly
  that error; any other exception answers -32603 with no detail (it is
  logged, never sent), as the server does for its own methods.
* An unknown method answers -32601; ``rpc.ping`` answers ``"pong"`` and
  cannot be overridden, nor can any other ``rpc.*`` name be served.
* Notifications are never answered, whatever happens; a failing notification
  handler (or params that do not bind to it) is logged and reported to
  ``on_error``.
* A batch is answered with one array, in the order of its calls; a batch of
  notifications only gets nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .encodings import JSON, MSGPACK, pack
from .exceptions import RpcError
from .protocol import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    EncodeError,
    ErrorObject,
    Invalid,
    Request,
    error_response,
    result_response,
)
from .protocol import dumps as json_dumps

__all__ = ["Handler", "Handlers"]

logger = logging.getLogger("wsmanager_client")

Handler = Callable[..., Any]
ErrorSink = Callable[[BaseException], None]


def _bind_problem(fn: Handler, args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: let the call decide
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    return None


def _response_text(response: dict[str, Any], dump: Callable[[Any], str | bytes]) -> dict[str, Any]:
    """The response itself, or -32603 in its place when its result cannot be encoded
    (as JSON, or as MessagePack on a MessagePack connection)."""
    try:
        dump(response)
    except EncodeError:
        logger.warning("handler result cannot be encoded; answering -32603", exc_info=True)
        return error_response(response["id"], ErrorObject.standard(INTERNAL_ERROR))
    return response


class Handlers:
    """The methods this client serves, one handler per name."""

    def __init__(self, on_error: ErrorSink | None = None, encoding: str = JSON) -> None:
        self._handlers: dict[str, Handler] = {}
        self.on_error = on_error
        #: The answers' encoding: MessagePack carries ``bytes`` in a result as bytes.
        self._dump: Callable[[Any], str | bytes] = pack if encoding == MSGPACK else json_dumps

    def on(self, method: str, fn: Handler | None) -> Callable[[], None]:
        """Serve ``method`` with ``fn`` (replacing any handler); ``fn=None`` stops serving it.

        Returns a function that removes this handler (and only this one).
        """
        if not isinstance(method, str) or method.startswith("rpc."):
            raise ValueError(f"cannot serve {method!r}: need a string not starting with 'rpc.'")
        if fn is None:
            self._handlers.pop(method, None)
            return lambda: None
        if not callable(fn):
            raise TypeError("a handler must be callable")
        self._handlers[method] = fn

        def remove() -> None:
            if self._handlers.get(method) is fn:
                del self._handlers[method]

        return remove

    def off(self, method: str) -> None:
        self._handlers.pop(method, None)

    def __contains__(self, method: object) -> bool:
        return method in self._handlers

    async def answer(self, items: Sequence[Request | Invalid], batch: bool) -> str | bytes | None:
        """Run the handlers of one frame's requests; the answer to send, or ``None``.

        Handlers run one after another in frame order up to their first
        ``await``; coroutines then run concurrently and the answer waits for
        all of them.
        """
        if len(items) == 1:
            answers = [await self._one(items[0])]
        else:
            answers = list(await asyncio.gather(*(self._one(item) for item in items)))
        responses = [r for r in answers if r is not None]
        if not responses:
            return None  # never an empty array (a batch of notifications)
        return self._dump(responses if batch else responses[0])

    async def _one(self, item: Request | Invalid) -> dict[str, Any] | None:
        if isinstance(item, Invalid):
            return error_response(item.id, item.error)
        answer = not item.notification
        if item.method == "rpc.ping":
            return result_response(item.id, "pong") if answer else None
        fn = self._handlers.get(item.method)
        if fn is None:
            if answer:
                return error_response(item.id, ErrorObject.standard(METHOD_NOT_FOUND, item.method))
            return None
        args, kwargs = ((), dict(item.params)) if isinstance(item.params, dict) else (item.params, {})
        problem = _bind_problem(fn, args, kwargs)
        if problem is not None:
            if answer:
                return error_response(item.id, ErrorObject.standard(INVALID_PARAMS, problem))
            self._report(item.method, TypeError(f"{item.method}: {problem}"))
            return None
        try:
            value = fn(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        except RpcError as exc:
            if answer:
                return error_response(item.id, ErrorObject(exc.code, exc.message, exc.data))
            self._report(item.method, exc)
            return None
        except Exception as exc:
            if answer:
                logger.exception("handler of %r raised; answering -32603", item.method)
                return error_response(item.id, ErrorObject.standard(INTERNAL_ERROR))
            self._report(item.method, exc)
            return None
        return _response_text(result_response(item.id, value), self._dump) if answer else None

    def _report(self, method: str, exc: BaseException) -> None:
        logger.error("handler of notification %r raised", method, exc_info=exc)
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                logger.exception("on_error raised")
