"""The client's state callbacks: what they receive, and how they are called.

Each kind of event is one frozen value whose fields are the browser client's
event fields (docs/client.md, "Events"), in snake case, delays in seconds.
A callback may be a plain function or a coroutine function; an exception it
raises is logged and never reaches the client's connection loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Background",
    "Callback",
    "Closed",
    "Connected",
    "Reconnected",
    "Reconnecting",
    "Recovered",
    "RecoveryFailed",
]

logger = logging.getLogger("wsmanager_client")

Callback = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Connected:
    """``rpc.connected`` arrived: on every connection. ``reconnect`` is false on a session's first."""

    id: str | None
    reconnect: bool


@dataclass(frozen=True, slots=True)
class Reconnected:
    """After :class:`Connected`, on every connection of a session but its first."""

    id: str | None
    previous_id: str | None


@dataclass(frozen=True, slots=True)
class Recovered:
    """After :class:`Reconnected`: the server resumed the session (same ``id``, groups and meta kept).

    ``replayed`` notifications missed during the drop follow, before live
    traffic; those the client already had are dropped.
    """

    id: str | None
    replayed: int


@dataclass(frozen=True, slots=True)
class RecoveryFailed:
    """After :class:`Reconnected`: the session could not be resumed; ``id`` is a fresh socket.

    ``reason`` is the server's (``"expired"``, ``"unknown"``, ``"overflow"``,
    ``"lost"``, ``"refused"``), ``"expired"`` too when the client's own clock
    saw the window pass, or ``"unsupported"`` when the server ignored the
    request. Messages sent meanwhile may be lost: the app refreshes its state.
    """

    reason: str
    previous_id: str | None
    id: str | None


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """Attempt ``attempt`` (1, 2, ...) starts in ``delay`` seconds; ``code``/``reason`` ended the last one."""

    attempt: int
    delay: float
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """An open connection closed (``will_reconnect`` true), or the client closed or gave up (false).

    Failed attempts that never opened give :class:`Reconnecting` only, except
    the last one when the client gives up.
    """

    code: int
    reason: str
    was_clean: bool
    will_reconnect: bool


class Background:
    """The client's background tasks (handlers, callbacks, the heartbeat), cancelled together on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def call(self, callback: Callback | None, event: Any) -> None:
        """Call ``callback(event)``; a coroutine it returns runs as a task. Exceptions are logged."""
        if callback is None:
            return
        try:
            result = callback(event)
            if inspect.isawaitable(result):
                self.spawn(result)
        except Exception:
            logger.exception("wsmanager_client: callback %r raised", callback)

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def cancel_all(self, but: asyncio.Task[Any] | None = None) -> None:
        for task in list(self._tasks):
            if task is not but:
                task.cancel()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("wsmanager_client: background task failed", exc_info=task.exception())
