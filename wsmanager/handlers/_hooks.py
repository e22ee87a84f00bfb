"""The hooks a handler overrides, each with its contract. The base
implementations here are what a handler does when it overrides nothing.

Per socket, in the order they can run: :meth:`Hooks.authorize` (before the
socket is registered), :meth:`Hooks.on_connect` (registered, not yet
accepted), :meth:`Hooks.on_open` (accepted; its frames go out before those
queued during the handshake), :meth:`Hooks.on_receive` for each frame (or
:meth:`Hooks.on_rate_limited` for one over the rate limit, and
:meth:`Hooks.on_error` when ``on_receive`` raised), and
:meth:`Hooks.on_disconnect` once at the end, if the socket was ever open.

Per group, as class methods, in the process that made the change:
:meth:`Hooks.on_presence` for each member that joined or left (before the
call that caused it returns), and :meth:`Hooks.on_presence_changes` with the
changes of a short interval together (:attr:`Hooks.presence_interval`), so
that a burst of joins into a big room costs one announcement per interval,
not one per member. See :mod:`wsmanager._presence`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from .._presence import Change, Member, PresenceEvent
from ..connection._lifecycle import CloseCode

__all__ = ["Hooks"]

logger = logging.getLogger(__name__)


class Hooks:
    """The overridable part of :class:`~wsmanager.handlers._handler.WebSocketHandler`."""

    handler_name: ClassVar[str]
    #: Seconds over which presence changes of a group are gathered for
    #: :meth:`on_presence_changes`; None: that hook is never called.
    presence_interval: ClassVar[float | None] = None
    id: str
    scope: dict[str, Any]

    if TYPE_CHECKING:  # the handler closes; declared here for on_error

        async def close(self, code: int | None = None, reason: str | None = None) -> None: ...

    async def authorize(self) -> bool:
        """May this client connect at all? Runs before the socket is registered.

        Override for checks on ``self.scope`` (user, path kwargs, headers);
        False refuses the handshake with HTTP 403. Exceptions refuse too.
        """
        return True

    async def on_connect(self) -> bool | None:
        """Decide whether to accept; return False (or raise RejectConnection) to refuse."""
        return None

    #: True when this connection resumed a dropped session (connection recovery).
    resumed: bool = False

    async def on_resume(self) -> bool | None:
        """Runs instead of ``on_connect`` when the connection resumed a session
        (``self.resumed``): its id, groups, meta and user are the old ones, and
        nothing is to be joined again. Refuse as ``on_connect`` does."""
        return None

    async def on_rate_limited(self, message: str | bytes) -> None:
        """A message over ``rate_limit`` was dropped (RPC handlers answer -32002)."""

    def frame_cost(self, message: str | bytes) -> int:
        """Tokens of ``rate_limit`` an incoming frame costs: 1 (RPC handlers: its calls).

        Called before ``on_receive`` or ``on_rate_limited`` with the same
        ``message``, and only for a frame within ``max_message_size`` when the
        handler has a rate limit.
        """
        return 1

    async def on_open(self) -> None:
        """Runs right after the handshake, before queued frames are written."""

    async def on_receive(self, message: str | bytes) -> None:
        """A frame arrived: ``str`` for text, ``bytes`` for binary."""

    async def on_disconnect(self, code: int) -> None:
        """The socket closed with ``code`` and has left the registry."""

    async def on_error(self, exc: Exception) -> None:
        """``on_receive`` raised: log it and close with 1011 (override to keep open)."""
        logger.error("handler %s socket %s failed", self.handler_name, self.id, exc_info=exc)
        await self.close(CloseCode.INTERNAL_ERROR)

    @classmethod
    async def on_presence(cls, group: str, event: PresenceEvent, member: Member) -> None:
        """A member ``"joined"`` or ``"left"`` a group of this handler.

        Runs in the process that made the change, before the call that made it
        returns; exceptions are logged.
        """

    @classmethod
    async def on_presence_changes(cls, group: str, changes: list[Change]) -> None:
        """Presence changes of ``group``, as ``(event, member)`` in the order they happened.

        With :attr:`presence_interval` set: the first change of a quiet group
        comes at once and alone, before the call that made it returns; the
        changes of the following interval come together at its end, net (a
        member that joined and left again within it is not there). Never
        called with an empty list; exceptions are logged.
        """
