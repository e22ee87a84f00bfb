"""``RpcHandler``: JSON-RPC 2.0 in both directions over a WebSocketHandler.

Client to server: only methods marked with :func:`rpc` can be called, by
their exposed name; hooks, private names and the reserved ``rpc.`` prefix
cannot. Params are bound to the method's signature (positional or named) and
checked against simple annotations (``str``, ``int``, ``float``, ``bool``,
``list``, ``dict``, ``None``, unions and ``list[X]``/``dict[str, X]``);
a mismatch is answered with -32602 before the method runs.

Execution: calls run in tasks apart from the socket's receive loop, so a
method may ``await self.invoke(...)`` on its own client without deadlock,
and a slow method never delays other sockets or the disconnect. Per socket,
at most :attr:`RpcHandler.max_concurrent_calls` calls run at once (1 by
default: calls run in arrival order, like SignalR). Waiting and running
calls are bounded per socket by :attr:`RpcHandler.max_pending_calls` (calls,
each member of a batch counting) and :attr:`RpcHandler.max_pending_bytes`
(the frames' text); a frame that does not fit is answered -32000 at once,
all of it. ``rpc.ping`` (the heartbeat) is answered at once, ahead of queued
calls. When the socket closes, running calls are cancelled and pending
invocations fail with :class:`ConnectionClosed`.

Cost before work: a frame is decoded once, with the batch limit checked on
the array's length before any member is built (:func:`protocol.decode`);
the rate limit charges a batch one token per member (:meth:`frame_cost`),
and a batch that does not fit is refused whole, each call answered -32002.

Errors never close the socket: bad input gets the standard error; an
:class:`RpcError` raised by a method is sent as is; a string the registry
cannot store (a lone surrogate has no UTF-8 form: ``UnicodeEncodeError``) is
-32602; a result longer than :attr:`RpcHandler.max_result_size` is -32603
"Result too large"; any other exception is answered -32603 "Internal
error", with no detail sent to the client. Logging is throttled per socket
(:mod:`wsmanager.logs`): at most one line per kind (bad input, method
errors, outages, oversized or unencodable results) per interval, the first
with its traceback, the rest counted and summed up in the next line or when
the socket closes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
import typing
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, Union

from channels.db import database_sync_to_async

from . import protocol
from .conf import get_settings
from .exceptions import (
    ConfigurationError,
    ConnectionClosed,
    DeliveryError,
    InvokeError,
    InvokeTimeout,
    RegistryUnavailable,
    RemoteError,
    RpcError,
)
from .handler import State, WebSocketHandler
from .limits import too_big
from .logs import LogThrottle
from .node import get_node
from .protocol import ErrorObject, Invalid, Request, Response

__all__ = ["RpcHandler", "rpc"]

logger = logging.getLogger("wsmanager.rpc")

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__wsmanager_rpc__"
_PERMISSION = "__wsmanager_rpc_permission__"
_THREAD_SENSITIVE = "__wsmanager_rpc_thread_sensitive__"
#: ``data`` of the -32602 answering a string that has no UTF-8 form.
UNSTORABLE = "a string holds a lone surrogate: it is not valid UTF-8 and cannot be stored"


Permission = str | Callable[[Any], bool | Awaitable[bool]]


def rpc(
    func: F | None = None,
    *,
    name: str | None = None,
    permission: Permission | None = None,
    thread_sensitive: bool = True,
) -> Any:
    """Expose a handler method to clients, as ``@rpc`` or ``@rpc(name="x")``.

    The method may be ``async def`` (runs on the event loop) or plain
    ``def`` (runs in the sync thread with Django's database clean-up, so it
    may use the ORM). Names starting with ``rpc.`` are reserved.

    A plain ``def`` runs in the process's one thread-sensitive sync thread,
    so sync methods of every socket run one at a time. With
    ``thread_sensitive=False`` it runs in a pool thread instead, next to
    other such calls: for blocking work (a slow HTTP call, a file) that must
    not hold up everyone else's sync methods. The database clean-up still
    runs around it, in its own thread; code that is not thread-safe must not
    use this.

    ``permission`` guards the method: a Django permission name
    (``"app.codename"``, checked with ``user.has_perm``) or a callable taking
    the handler and returning a bool (or an awaitable of one). A refused call
    gets -32003 "Forbidden" with ``data`` saying what was required, and the
    method does not run.
    """

    def mark(fn: F) -> F:
        exposed = name or fn.__name__
        if exposed.startswith("rpc.") or exposed.startswith("_"):
            raise ValueError(f"cannot expose {exposed!r}: 'rpc.' and '_' names are reserved")
        setattr(fn, _MARK, exposed)
        setattr(fn, _PERMISSION, permission)
        if not thread_sensitive and inspect.iscoroutinefunction(fn):
            raise ValueError(f"thread_sensitive applies to plain def methods, not to {exposed!r}")
        setattr(fn, _THREAD_SENSITIVE, thread_sensitive)
        return fn

    return mark(func) if func is not None else mark


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class _BadParams(Exception):
    pass


@dataclass(frozen=True)
class _Method:
    attr: str
    signature: inspect.Signature
    hints: Mapping[str, Any]
    is_async: bool
    permission: Permission | None = None
    thread_sensitive: bool = True

    @classmethod
    def of(cls, attr: str, fn: Callable[..., Any]) -> _Method:
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]  # drop self
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable annotations: bind only, no type checks
            hints = {}
        hints.pop("return", None)
        permission = getattr(fn, _PERMISSION, None)
        sensitive = getattr(fn, _THREAD_SENSITIVE, True)
        is_async = inspect.iscoroutinefunction(fn)
        return cls(attr, sig.replace(parameters=params), hints, is_async, permission, sensitive)

    def bind(self, params: tuple[Any, ...] | dict[str, Any]) -> inspect.BoundArguments:
        try:
            bound = (
                self.signature.bind(**params) if isinstance(params, dict) else self.signature.bind(*params)
            )
        except TypeError as exc:
            raise _BadParams(str(exc)) from None
        for pname, value in bound.arguments.items():
            hint = self.hints.get(pname)
            kind = self.signature.parameters[pname].kind
            if hint is None or kind in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                continue
            if not _matches(value, hint):
                raise _BadParams(f"{pname} must be {_describe(hint)}")
        return bound


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a simple annotation; unknown annotations pass."""
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is list or origin is list:
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if hint is dict or origin is dict:
        args = typing.get_args(hint)
        return isinstance(value, dict) and (
            len(args) != 2 or all(_matches(v, args[1]) for v in value.values())
        )
    return True


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


class RpcHandler(WebSocketHandler):
    """A handler that speaks JSON-RPC 2.0 both ways. See the module docstring."""

    abstract: ClassVar[bool] = True
    #: Calls of one socket that may run at the same time (1: in arrival order).
    max_concurrent_calls: ClassVar[int] = 1
    #: Calls of one socket (each member of a batch counting) that may wait or
    #: run; a frame whose calls do not fit gets -32000 for each. Keep it at
    #: least ``max_batch_size``, or full batches are always refused.
    max_pending_calls: ClassVar[int] = 100
    #: Text of the frames whose calls wait or run (characters); a frame past
    #: it gets -32000, unless nothing is pending (one frame always fits).
    max_pending_bytes: ClassVar[int] = 1024 * 1024
    #: Largest accepted batch; larger ones get one -32600 error.
    max_batch_size: ClassVar[int] = 100
    #: Largest incoming frame (UTF-8 bytes); larger closes with 1009. Smaller
    #: than a raw handler's 1 MiB: a call needs little (docs/security.md).
    max_message_size: ClassVar[int | None] = 64 * 1024
    #: Largest answer frame (UTF-8 bytes; a lone response, or a batch's
    #: array); a result that would pass it is answered -32603 "Result too
    #: large" instead. Under daphne's 1 MiB, with room for the error members
    #: of a batch. None: no limit.
    max_result_size: ClassVar[int | None] = 896 * 1024
    #: Exposed name -> method description, collected from ``@rpc`` marks.
    rpc_methods: ClassVar[dict[str, _Method]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        methods: dict[str, _Method] = {}
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                exposed = getattr(fn, _MARK, None)
                if isinstance(exposed, str) and callable(fn):
                    if hasattr(RpcHandler, attr):  # a hook or base method: never callable
                        raise ConfigurationError(
                            f"{cls.__qualname__}.{attr} overrides a handler method and cannot "
                            "be exposed with @rpc; give the method another name"
                        )
                    methods[exposed] = _Method.of(attr, fn)
        super().__init_subclass__(**kwargs)
        cls.rpc_methods = methods

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls: deque[tuple[list[Request | Invalid], bool, int]] = deque()
        self._running = 0  # worker tasks
        self._pending_calls = 0  # members of the frames queued or running, until answered
        self._pending_bytes = 0  # text of those frames
        self._decoded: tuple[str, protocol.Decoded] | None = None  # frame_cost's, for on_receive
        self._log = LogThrottle()
        self._workers: set[asyncio.Task[None]] = set()
        self._invocations: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._next_call = 0

    # -- server to client ---------------------------------------------------------
    async def on_open(self) -> None:
        await self.send_frame(protocol.encode_notification("rpc.connected", {"id": self.id}))

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> bool:
        """Send a notification to this client; False if the socket is closed."""
        if args and kwargs:
            raise TypeError("JSON-RPC params are positional or named, not both")
        return await self.send_frame(protocol.encode_notification(method, kwargs or args))

    async def invoke(self, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call a method of this client and return its result.

        Raises InvokeTimeout, RemoteError (the client's error object) or
        ConnectionClosed (the socket closed first). Raises InvokeError at once
        when awaited from the socket's own receive loop (``on_connect``,
        ``on_open``, ``on_receive``, ``on_disconnect``): the answer could not be
        read until the hook returns. ``@rpc`` methods run apart and may invoke.
        """
        if args and kwargs:
            raise TypeError("JSON-RPC params are positional or named, not both")
        if asyncio.current_task() is self._receive_task:
            raise InvokeError(self.id, method, "cannot wait for an answer inside the socket's own hooks")
        if self.state not in (State.CONNECTING, State.OPEN):
            raise ConnectionClosed(self.id)
        self._next_call += 1
        call_id = self._next_call
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._invocations[call_id] = (method, future)
        wait = get_settings().invoke_timeout if timeout is None else timeout
        try:
            if not await self.send_frame(protocol.encode_request(method, kwargs or args, call_id)):
                raise ConnectionClosed(self.id)
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            raise InvokeTimeout(self.id, method, wait) from None
        finally:
            self._invocations.pop(call_id, None)

    # -- client to server -------------------------------------------------------------
    def frame_cost(self, message: str | bytes) -> int:
        """One token per member of a batch (a lone message or a refused batch: 1).

        Decodes the frame (kept for ``on_receive`` / ``on_rate_limited``, which
        get the same message); binary frames cost 1.
        """
        if isinstance(message, bytes):
            return 1
        decoded = self._decode(message)
        return len(decoded.items) if decoded.batch else 1

    def _decode(self, message: str) -> protocol.Decoded:
        """The frame decoded once: frame_cost's result when it saw this very message."""
        kept, self._decoded = self._decoded, None
        if kept is not None and kept[0] is message:
            return kept[1]
        decoded = protocol.decode(message, max_batch=self.max_batch_size)
        self._decoded = (message, decoded)
        return decoded

    async def on_receive(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            error = ErrorObject.standard(protocol.BINARY_NOT_SUPPORTED)
            await self.send_frame(protocol.encode_error(None, error))
            return
        decoded = self._decode(message)
        self._decoded = None
        work: list[Request | Invalid] = []
        for item in decoded.items:
            if isinstance(item, Response):
                self._settle(item)
            else:
                work.append(item)
        if not work:
            return
        first = work[0]
        bad = next((item for item in work if isinstance(item, Invalid)), None)
        if bad is not None:
            self._log.log(
                logger,
                "bad_input",
                logging.INFO,
                "socket %s: invalid input answered %d %s (%s)",
                self.id,
                bad.error.code,
                bad.error.message,
                bad.error.data,
            )
        if not decoded.batch and isinstance(first, Invalid):
            await self.send_frame(protocol.encode_error(first.id, first.error))
            return
        if not decoded.batch and isinstance(first, Request) and first.method == "rpc.ping":
            # Heartbeats skip the call queue: a slow call must not make a
            # live connection look dead to the client.
            if not first.notification:
                await self.send_frame(protocol.encode_result(first.id, "pong"))
            return
        self._enqueue_calls(work, decoded.batch, len(message))

    def _settle(self, response: Response) -> None:
        entry = self._invocations.get(response.id) if isinstance(response.id, int) else None
        if entry is None:
            logger.debug("socket %s answered unknown call %r", self.id, response.id)
            return
        method, future = entry
        if future.done():
            return
        if response.error is not None:
            err = response.error
            future.set_exception(RemoteError(self.id, method, err.code, err.message, err.data))
        else:
            future.set_result(response.result)

    def _enqueue_calls(self, work: list[Request | Invalid], batch: bool, size: int) -> None:
        """Queue a frame's calls, or answer them all -32000 when they do not fit."""
        calls, pending = len(work), self._pending_calls
        if pending + calls > self.max_pending_calls or (
            pending and self._pending_bytes + size > self.max_pending_bytes
        ):
            busy = ErrorObject.standard(protocol.SERVER_BUSY)
            answers = [
                protocol.encode_error(item.id, busy if isinstance(item, Request) else item.error)
                for item in work
                if not (isinstance(item, Request) and item.notification)
            ]
            get_node().stats["calls_refused_busy"] += sum(isinstance(item, Request) for item in work)
            asyncio.get_running_loop().create_task(self._answer(answers, batch))
            return
        self._pending_calls += calls
        self._pending_bytes += size
        self._calls.append((work, batch, size))
        if self._running < self.max_concurrent_calls:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._work())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        try:
            while self._calls and self.state is State.OPEN:
                work, batch, size = self._calls.popleft()
                try:
                    answers: list[str] = []
                    room = self.max_result_size
                    for item in work:
                        answer = await self._run(item, room)
                        if answer is not None:
                            answers.append(answer)
                            if room is not None:  # UTF-8 bytes, and a comma or a bracket
                                room -= 1 + (len(answer) if answer.isascii() else _utf8_size(answer))
                    await self._answer(answers, batch)
                finally:
                    self._pending_calls -= len(work)
                    self._pending_bytes -= size
        finally:
            self._running -= 1

    async def _answer(self, answers: list[str], batch: bool) -> None:
        """Send encoded responses: one, or a batch array (nothing when empty)."""
        if answers:
            await self.send_frame(f"[{','.join(answers)}]" if batch else answers[0])

    async def _run(self, item: Request | Invalid, room: int | None = None) -> str | None:
        """Run one call; its encoded response, or None for a notification.

        ``room``: bytes left in the answer frame (None: no limit); a result
        that does not fit is answered -32603 "Result too large" instead.
        """
        if isinstance(item, Invalid):
            return protocol.encode_error(item.id, item.error)
        try:
            result = await self._call(item)
        except RpcError as exc:
            error = ErrorObject(exc.code, exc.message, exc.data)
        except _BadParams as exc:
            error = ErrorObject.standard(protocol.INVALID_PARAMS, str(exc))
        except UnicodeEncodeError:
            # Only a client's JSON can carry a lone surrogate ("\udfff"); it has
            # no UTF-8 form, so a registry or channel layer cannot store it.
            self._log.log(
                logger,
                "unstorable",
                logging.INFO,
                "rpc %r on socket %s: a string has no UTF-8 form",
                item.method,
                self.id,
            )
            error = ErrorObject.standard(protocol.INVALID_PARAMS, UNSTORABLE)
        except (RegistryUnavailable, DeliveryError) as exc:
            self._log.log(
                logger, "unavailable", logging.WARNING, "rpc %r on socket %s: %s", item.method, self.id, exc
            )
            error = ErrorObject.standard(protocol.UNAVAILABLE)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.log(
                logger,
                "method_error",
                logging.ERROR,
                "rpc %r on socket %s of %s raised",
                item.method,
                self.id,
                self.name,
                exc_info=exc,
            )
            error = ErrorObject.standard(protocol.INTERNAL_ERROR)
        else:
            if item.notification:
                return None
            try:
                text = protocol.encode_result(item.id, result)
            except protocol.EncodeError as exc:
                self._log.log(
                    logger,
                    "bad_result",
                    logging.ERROR,
                    "rpc %r on socket %s returned a value that is not JSON",
                    item.method,
                    self.id,
                    exc_info=exc,
                )
                error = ErrorObject.standard(protocol.INTERNAL_ERROR)
            else:
                if room is None or not too_big(text, room):
                    return text
                get_node().stats["results_too_large"] += 1
                self._log.log(
                    logger,
                    "result_too_large",
                    logging.WARNING,
                    "rpc %r on socket %s: result of %d characters over max_result_size %s",
                    item.method,
                    self.id,
                    len(text),
                    self.max_result_size,
                )
                error = ErrorObject(
                    protocol.INTERNAL_ERROR, "Result too large", {"max": self.max_result_size}
                )
        return None if item.notification else protocol.encode_error(item.id, error)

    async def _call(self, request: Request) -> Any:
        if request.method == "rpc.ping":
            return "pong"
        method = self.rpc_methods.get(request.method)
        if method is None:
            raise RpcError(protocol.METHOD_NOT_FOUND, "Method not found", request.method)
        if method.permission is not None:
            await self._check_permission(request.method, method.permission)
        bound = method.bind(request.params)
        func = getattr(self, method.attr)
        if method.is_async:
            return await func(*bound.args, **bound.kwargs)
        run = database_sync_to_async(func, thread_sensitive=method.thread_sensitive)
        return await run(*bound.args, **bound.kwargs)

    async def _check_permission(self, name: str, permission: Permission) -> None:
        if isinstance(permission, str):
            user = self.scope.get("user")
            has_perm = getattr(user, "has_perm", None)
            allowed = bool(has_perm is not None and await database_sync_to_async(has_perm)(permission))
            reason = f"requires the permission {permission!r}"
        else:
            verdict = permission(self)
            allowed = bool(await verdict if inspect.isawaitable(verdict) else verdict)
            reason = f"refused by {getattr(permission, '__name__', 'a permission check')}"
        if not allowed:
            get_node().stats["calls_refused_permission"] += 1
            raise RpcError(protocol.FORBIDDEN, "Forbidden", {"method": name, "reason": reason})

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Answer each call of the refused frame with -32002 (notifications: nothing).

        A batch is refused whole: every call in it is answered -32002 and none
        runs; answers to our invocations in it are still read.
        """
        if isinstance(message, bytes):
            return
        limited = ErrorObject.standard(protocol.RATE_LIMITED)
        decoded = self._decode(message)
        self._decoded = None
        for item in decoded.items:  # answers to our invocations are never refused
            if isinstance(item, Response):
                self._settle(item)
        answers = [
            protocol.encode_error(item.id, limited)
            for item in decoded.items
            if isinstance(item, Request) and not item.notification
        ]
        await self._answer(answers, decoded.batch)

    async def on_released(self, code: int | None) -> None:
        self._calls.clear()
        self._decoded = None
        for kind, count in self._log.flush().items():
            logger.info("socket %s closed: %d more %r lines were not logged", self.id, count, kind)
        for task in list(self._workers):
            if task is not asyncio.current_task():
                task.cancel()
        for _method, future in self._invocations.values():
            if not future.done():
                future.set_exception(ConnectionClosed(self.id, code))
        self._invocations.clear()
