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
default: calls run in arrival order, like SignalR); up to
:attr:`RpcHandler.max_pending_calls` more wait, beyond which calls are
answered -32000 at once. ``rpc.ping`` (the heartbeat) is answered at once,
ahead of queued calls. When the socket closes, running calls are cancelled
and pending invocations fail with :class:`ConnectionClosed`.

Errors never close the socket: bad input gets the standard error; an
:class:`RpcError` raised by a method is sent as is; any other exception is
logged with its traceback and answered -32603 "Internal error", with no
detail sent to the client.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from channels.db import database_sync_to_async

from . import observe, protocol
from .conf import get_settings
from .counters import Count, bump
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
from .handler import WebSocketHandler
from .lifecycle import State
from .params import BadParams, Method, Permission
from .protocol import ErrorObject, Invalid, Request, Response, params_of

__all__ = ["RpcHandler", "rpc"]

logger = logging.getLogger("wsmanager.rpc")

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__wsmanager_rpc__"


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
        if not thread_sensitive and inspect.iscoroutinefunction(fn):
            raise ValueError(f"thread_sensitive applies to plain def methods, not to {exposed!r}")
        setattr(fn, _MARK, (exposed, permission, thread_sensitive))
        return fn

    return mark(func) if func is not None else mark


class RpcHandler(WebSocketHandler):
    """A handler that speaks JSON-RPC 2.0 both ways. See the module docstring."""

    abstract: ClassVar[bool] = True
    #: Calls of one socket that may run at the same time (1: in arrival order).
    max_concurrent_calls: ClassVar[int] = 1
    #: Calls of one socket that may wait or run before new ones get -32000.
    max_pending_calls: ClassVar[int] = 64
    #: Largest accepted batch; larger ones get one -32600 error.
    max_batch_size: ClassVar[int] = 100
    #: Exposed name -> method description, collected from ``@rpc`` marks.
    rpc_methods: ClassVar[dict[str, Method]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        methods: dict[str, Method] = {}
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                mark = getattr(fn, _MARK, None)
                if isinstance(mark, tuple) and callable(fn):
                    exposed, permission, sensitive = mark
                    if hasattr(RpcHandler, attr):  # a hook or base method: never callable
                        raise ConfigurationError(
                            f"{cls.__qualname__}.{attr} overrides a handler method and cannot "
                            "be exposed with @rpc; give the method another name"
                        )
                    methods[exposed] = Method.of(attr, fn, permission, sensitive)
        super().__init_subclass__(**kwargs)
        cls.rpc_methods = methods

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls: deque[tuple[list[Request | Invalid], bool]] = deque()
        self._running = 0  # worker tasks
        self._in_flight = 0  # calls taken by a worker and not answered yet
        self._workers: set[asyncio.Task[None]] = set()
        self._invocations: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._next_call = 0

    # -- server to client ---------------------------------------------------------
    async def on_open(self) -> None:
        await self.send_frame(protocol.encode_notification("rpc.connected", {"id": self.id}))

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> bool:
        """Send a notification to this client; False if the socket is closed."""
        return await self.send_frame(protocol.encode_notification(method, params_of(args, kwargs)))

    async def invoke(self, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call a method of this client and return its result.

        Raises InvokeTimeout, RemoteError (the client's error object) or
        ConnectionClosed (the socket closed first). Raises InvokeError at once
        when awaited from the socket's own receive loop (``on_connect``,
        ``on_open``, ``on_receive``, ``on_disconnect``): the answer could not be
        read until the hook returns. ``@rpc`` methods run apart and may invoke.
        """
        return await self.invoke_params(method, params_of(args, kwargs), timeout=timeout)

    async def invoke_params(
        self, method: str, params: tuple[Any, ...] | dict[str, Any], /, *, timeout: float | None = None
    ) -> Any:
        """:meth:`invoke` with the params as one value, so named params may have any name."""
        if asyncio.current_task() is self._receive_task:
            raise InvokeError(self.id, method, "cannot wait for an answer inside the socket's own hooks")
        if self.state not in (State.CONNECTING, State.OPEN):
            raise ConnectionClosed(self.id)
        waiting = self._invoke_params(method, params, timeout)
        return await (waiting if observe.hub is None else observe.hub.invoke(self, method, waiting))

    async def _invoke_params(
        self, method: str, params: tuple[Any, ...] | dict[str, Any], timeout: float | None
    ) -> Any:
        self._next_call += 1
        call_id = self._next_call
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._invocations[call_id] = (method, future)
        wait = get_settings().invoke_timeout if timeout is None else timeout
        try:
            if not await self.send_frame(protocol.encode_request(method, params, call_id)):
                raise ConnectionClosed(self.id)
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            raise InvokeTimeout(self.id, method, wait) from None
        finally:
            self._invocations.pop(call_id, None)

    # -- client to server -------------------------------------------------------------
    async def on_receive(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            error = ErrorObject.standard(protocol.BINARY_NOT_SUPPORTED)
            await self.send_frame(protocol.encode_error(None, error))
            return
        decoded = protocol.decode(message)
        if decoded.batch and len(decoded.items) > self.max_batch_size:
            data = f"at most {self.max_batch_size} calls per batch"
            await self.send_frame(
                protocol.encode_error(None, ErrorObject.standard(protocol.INVALID_REQUEST, data))
            )
            return
        work: list[Request | Invalid] = []
        for item in decoded.items:
            if isinstance(item, Response):
                self._settle(item)
            else:
                work.append(item)
        if not work:
            return
        first = work[0]
        if not decoded.batch and isinstance(first, Invalid):
            await self.send_frame(protocol.encode_error(first.id, first.error))
            return
        if not decoded.batch and isinstance(first, Request) and first.method == "rpc.ping":
            # Heartbeats skip the call queue: a slow call must not make a
            # live connection look dead to the client.
            if not first.notification:
                await self.send_frame(protocol.encode_result(first.id, "pong"))
            return
        self._enqueue_calls(work, decoded.batch)

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

    def _enqueue_calls(self, work: list[Request | Invalid], batch: bool) -> None:
        if len(self._calls) + self._in_flight >= self.max_pending_calls:
            busy = ErrorObject.standard(protocol.SERVER_BUSY)
            answers = [
                protocol.encode_error(item.id, busy if isinstance(item, Request) else item.error)
                for item in work
                if not (isinstance(item, Request) and item.notification)
            ]
            bump(Count.CALLS_REFUSED_BUSY)
            asyncio.get_running_loop().create_task(self._answer(answers, batch))
            return
        self._calls.append((work, batch))
        if self._running < self.max_concurrent_calls:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._work())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        try:
            while self._calls and self.state is State.OPEN:
                work, batch = self._calls.popleft()
                self._in_flight += 1
                try:
                    answers = []
                    for item in work:
                        answer = await self._run(item)
                        if answer is not None:
                            answers.append(answer)
                    await self._answer(answers, batch)
                finally:
                    self._in_flight -= 1
        finally:
            self._running -= 1

    async def _answer(self, answers: list[str], batch: bool) -> None:
        """Send encoded responses: one, or a batch array (nothing when empty)."""
        if answers:
            await self.send_frame(f"[{','.join(answers)}]" if batch else answers[0])

    async def _run(self, item: Request | Invalid) -> str | None:
        """Run one call; its encoded response, or None for a notification."""
        if isinstance(item, Invalid):
            return protocol.encode_error(item.id, item.error)
        try:
            call = self._call(item)
            result = await (call if observe.hub is None else observe.hub.rpc(self, item.method, call))
        except RpcError as exc:
            error = ErrorObject(exc.code, exc.message, exc.data)
        except BadParams as exc:
            error = ErrorObject.standard(protocol.INVALID_PARAMS, str(exc))
        except (RegistryUnavailable, DeliveryError) as exc:
            logger.warning("rpc %r on socket %s: %s", item.method, self.id, exc)
            error = ErrorObject.standard(protocol.UNAVAILABLE)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("rpc %r on socket %s of %s raised", item.method, self.id, self.handler_name)
            error = ErrorObject.standard(protocol.INTERNAL_ERROR)
        else:
            if item.notification:
                return None
            try:
                return protocol.encode_result(item.id, result)
            except protocol.EncodeError:
                logger.exception("rpc %r returned a value that is not JSON", item.method)
                error = ErrorObject.standard(protocol.INTERNAL_ERROR)
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
            bump(Count.CALLS_REFUSED_PERMISSION)
            raise RpcError(protocol.FORBIDDEN, "Forbidden", {"method": name, "reason": reason})

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Answer each call of the refused frame with -32002 (notifications: nothing)."""
        if isinstance(message, bytes):
            return
        limited = ErrorObject.standard(protocol.RATE_LIMITED)
        decoded = protocol.decode(message)
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
        for task in list(self._workers):
            if task is not asyncio.current_task():
                task.cancel()
        for _method, future in self._invocations.values():
            if not future.done():
                future.set_exception(ConnectionClosed(self.id, code))
        self._invocations.clear()
