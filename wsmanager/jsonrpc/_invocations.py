"""Server-to-client calls in flight on one socket: ids, futures, settling. No I/O.

:meth:`Invocations.start` numbers a call (1, 2, ... per socket) and gives the
future its answer settles; :meth:`Invocations.settle` takes a peer's
response, :meth:`Invocations.fail_all` fails every pending call when the
socket goes. An answer to an unknown id (late, after a timeout, or made up)
is ignored; a call is settled at most once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from wsmanager_client.protocol import Response

from ..exceptions import ConnectionClosed, RemoteError

__all__ = ["Invocations"]

logger = logging.getLogger(__name__)


class Invocations:
    """The calls this server made to one client and awaits answers for."""

    __slots__ = ("_next", "_pending", "socket_id")

    def __init__(self) -> None:
        self.socket_id = ""
        self._next = 0
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}

    def start(self, method: str) -> tuple[int, asyncio.Future[Any]]:
        """A new call of ``method``: its id and the future its answer settles."""
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = (method, future)
        return self._next, future

    def forget(self, call_id: int) -> None:
        """The caller stopped waiting (answered, timed out or cancelled)."""
        self._pending.pop(call_id, None)

    def settle(self, response: Response) -> None:
        """Give a peer's answer to the call it names; unknown ids are ignored."""
        entry = self._pending.get(response.id) if isinstance(response.id, int) else None
        if entry is None:
            logger.debug("socket %s answered unknown call %r", self.socket_id, response.id)
            return
        method, future = entry
        if future.done():
            return
        if response.error is not None:
            err = response.error
            future.set_exception(RemoteError(self.socket_id, method, err.code, err.message, err.data))
        else:
            future.set_result(response.result)

    def fail_all(self, code: int | None) -> None:
        """The socket closed: every pending call fails with ConnectionClosed."""
        for _method, future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed(self.socket_id, code))
        self._pending.clear()
