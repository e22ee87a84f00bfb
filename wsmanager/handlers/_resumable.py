"""``Resumable``: the handler half of connection recovery (:mod:`wsmanager._recovery`).

:class:`~wsmanager.jsonrpc._dispatch.RpcHandler` is a ``Resumable``; recovery is on when
``recovery_window`` (or ``WSMANAGER["RECOVERY_WINDOW"]``) is a positive
number of seconds, per class or per route (``route(..., recovery_window=60)``).

* A fresh socket gets a resume token and its journal position in
  ``rpc.connected`` (docs/protocol.md, "Connection recovery").
* A connection whose URL carries ``wsm_resume`` (the token) and
  ``wsm_offset`` (the last offset the client saw) resumes that session when
  it can: same id, entry, groups and presence; ``on_resume`` runs instead
  of ``on_connect``; the missed notifications go out right after
  ``rpc.connected``, before anything live. When it cannot, the socket is a
  fresh one and ``rpc.connected`` says why (``recovery_failed``). Origin,
  authentication and ``authorize()`` run first either way.
* A resume over ``resume_rate_per_address`` or ``resume_rate_per_session``
  is accepted and closed with 1013 "too many resumes" before anything is
  read or changed; its token still works.
* A drop with a close code in :data:`~wsmanager._recovery.PARK_CODES` parks
  the socket's entry for its window instead of releasing it;
  ``on_disconnect`` still runs on this connection. A parked socket goes on
  counting toward ``max_connections_per_address`` in this process; at the
  cap, the oldest parked one is released to make room for a newcomer.
* Its own ``send_notification`` goes through the journal too.

The replayed notifications go into the outbox without the backlog check
(they were bounded by ``recovery_max_bytes``); live frames after them are
checked as usual, so keep ``recovery_max_bytes`` well under ``max_send_backlog``.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs

from wsmanager_client import protocol
from wsmanager_client.protocol import params_of

from .. import _presence as presence
from .. import _recovery as recovery
from .. import servers
from .._recovery import PARK_CODES, Refused, Throttled, Token
from ..connection import _admission as admission
from ..connection._lifecycle import CloseCode
from ..connection._outbox import frame, size_of
from ..connection._refusals import Refusal
from ..node._hub import Node, get_node
from ..observe._counters import Count, bump
from ..registry import ConnectionInfo, get_journal
from ._handler import WebSocketHandler

__all__ = ["Resumable"]

logger = logging.getLogger(__name__)


class Resumable(WebSocketHandler):
    """A handler whose sockets may resume after a drop (see the module)."""

    abstract: ClassVar[bool] = True
    #: Seconds a dropped socket may resume within; None: ``WSMANAGER["RECOVERY_WINDOW"]``; 0: off.
    recovery_window: ClassVar[float | None] = None
    #: Most missed notifications a resume replays; more: the resume fails ("overflow").
    recovery_max_messages: ClassVar[int] = 1000
    #: Most bytes of missed notifications a resume replays; more: it fails ("overflow").
    recovery_max_bytes: ClassVar[int] = 128 * 1024
    #: Most bytes of the journal one resume reads (every notification of the handler in
    #: the gap weighs, addressed to the socket or not); more: it fails ("overflow").
    #: None: ``recovery.READ_FACTOR`` (16) times ``recovery_max_bytes``, 2 MiB by default.
    recovery_max_read: ClassVar[int | None] = None
    #: Resumes per second and burst from one client address, per process; over it the
    #: connection is closed with 1013 "too many resumes" (the token still works). None: no limit.
    resume_rate_per_address: ClassVar[tuple[float, float] | None] = (5.0, 50.0)
    #: Resumes per second and burst of one session, across processes; over it: 1013 too.
    resume_rate_per_session: ClassVar[tuple[float, float] | None] = (0.2, 5.0)

    # A socket's recovery state, from these values on the class until it sets its own
    # (a socket's ``__dict__`` then holds only what it has set; see RpcHandler).
    _token: Token | None = None
    _offset: str = "0-0"
    _replay: Sequence[str] = ()  # frames to replay on open (a resumed socket)
    _missed: int = 0
    _failed: str | None = None
    _handed_over: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("resume_rate_per_address", "resume_rate_per_session"):
            limit = getattr(self, name)
            if limit is not None and not (len(limit) == 2 and limit[0] > 0 and limit[1] >= 1):
                raise ValueError(f"{name} must be None or (rate > 0, burst >= 1), not {limit!r}")
        if self.recovery_max_read is not None and self.recovery_max_read <= 0:
            raise ValueError(f"recovery_max_read must be None or positive, not {self.recovery_max_read!r}")

    @property
    def recoverable(self) -> bool:
        """Whether this socket may resume after a drop."""
        return recovery.window_of(self) > 0

    def _resume_request(self) -> tuple[str, str] | None:
        """The token and offset the URL asks to resume with; None: a fresh socket."""
        if recovery.window_of(self) <= 0:
            return None
        query = parse_qs((self.scope.get("query_string") or b"").decode("latin-1"))
        token = (query.get("wsm_resume") or [""])[0]
        return (token, (query.get("wsm_offset") or ["0-0"])[0]) if token else None

    # -- signing in and out ------------------------------------------------------------
    async def _admit_address(self, node: Node, address: str | None) -> bool:
        """The address cap, counting the sockets this process parked for the address
        too: when it is reached, the oldest of them is released to make room (4429
        only when none is left). A resume is first held to its address's rate (over
        it: 1013), and may take the place of the session it names when that session
        is parked here for the same address."""
        request = self._resume_request()
        if request is not None and not recovery.address_may_resume(
            self.handler_name, address, self.resume_rate_per_address
        ):
            await self._refuse_resume(address)
            return False
        cap = self.max_connections_per_address
        parsed = Token.parse(request[0]) if request is not None else None
        own = parsed.socket_id if parsed is not None else ""
        while True:
            mine = 1 if own and node.is_parked_here(self.handler_name, address, own) else 0
            if node.reserve(self, self.handler_name, address, None if cap is None else cap + mine):
                return True
            if not await recovery.make_room(node, self.handler_name, address, spare=own):
                await self._refuse_address(address)
                return False

    async def _refuse_resume(self, address: str | None) -> None:
        await self._refuse(
            Refusal(
                "resume_rate",
                "too many resumes",
                code=CloseCode.TRY_AGAIN_LATER,
                detail=f"{address} over resume_rate_per_address or resume_rate_per_session",
            )
        )

    async def _sign_in(self, node: Node, address: str | None, **entry: Any) -> bool:
        window = recovery.window_of(self)
        if window <= 0:
            return await super()._sign_in(node, address, **entry)
        await node.start()
        request = self._resume_request()
        if request is not None:
            resumed = await self._resume(node, address, *request)
            if resumed is not False:
                return resumed is True
            if not await self._fits(node, address):  # the place it took was its session's
                return False
        self._offset = await get_journal().last(self.handler_name)  # before anyone can address it
        await recovery.enable(self.handler_name, window)
        fresh = Token.new("")
        entry.update(recovery=window, resume_key=fresh.key, since=self._offset)
        if not await super()._sign_in(node, address, **entry):
            return False
        self._token = Token(self.id, fresh.secret)
        return True

    async def _fits(self, node: Node, address: str | None) -> bool:
        """After a failed resume, this connection (counted) must fit under the cap on its own."""
        cap = self.max_connections_per_address
        while cap is not None and node.sockets_from(self.handler_name, address) > cap:
            if not await recovery.make_room(node, self.handler_name, address):
                await self._refuse_address(address)
                return False
        return True

    async def _resume(self, node: Node, address: str | None, token: str, offset: str) -> bool | None:
        """Try to resume the session ``token`` names: True resumed; False: go on as a
        fresh socket; None: refused over the session's resume rate (closed with 1013)."""
        parsed = Token.parse(token)
        if parsed is None:
            self._failed = "unknown"
            return False

        def attach(replaced: str, groups: frozenset[str]) -> None:  # the claim is ours: take the id
            old = node.sockets.get(parsed.socket_id)
            self._set_id(parsed.socket_id)
            # In its groups at once: a group broadcast after the claim reaches it here.
            self.info = ConnectionInfo(self.id, self.handler_name, node.id, address=address, groups=groups)
            node.attach(self)
            if old is not None and old is not self:  # the old connection, half-open here
                old.taken_over(replaced)

        user_id = admission.user_id_of(self.scope)
        try:
            result = await recovery.resume(self, node, token, offset, user_id, address, attach)
        except BaseException:
            self._undo_attach(node)
            raise
        if isinstance(result, Throttled):
            await self._refuse_resume(address)
            return None
        if isinstance(result, Refused):
            self._undo_attach(node)
            self._failed = result.reason
            return False
        self.info, self._token, self._replay = result.info, result.token, result.frames
        node.reindex(self)  # the session's groups: group broadcasts reach it from here on
        self._offset, self._missed = result.offset, result.missed
        self.resumed = True
        await recovery.enable(self.handler_name, result.info.recovery)
        return True

    def _undo_attach(self, node: Node) -> None:
        """The resume failed after its claim: give the id back, and drop what queued
        for the session meanwhile (the fresh socket must not show any of it; counted).
        The connection stays counted for its address."""
        if not self.id:
            return
        node.vacate(self.id, self)
        self._set_id("")
        bump(Count.DROPPED_CLOSED, len(self.writer.outbox.take_all()))

    async def _sign_out(self, node: Node, code: int | None) -> ConnectionInfo | None:
        if self._handed_over:
            return None
        if self.info.recovery <= 0:
            return await super()._sign_out(node, code)
        closed_with = code if code is not None else self._sent_code
        dropped = closed_with in PARK_CODES or closed_with in servers.lost_codes(self.base_send)
        if dropped and await recovery.park(self.info, node):
            return None
        # Only this connection's entry: a session resumed meanwhile (even here) is not ours.
        return await presence.release(self.handler_name, self.id, node.id, self.info.resume_key)

    def taken_over(self, key: str) -> bool:
        """Another connection resumed this session: if this is the connection the resume
        replaced (its key is ``key``), it leaves the node at once, closes with 4409
        "resumed elsewhere" in a task, and leaves the registry alone; True then."""
        if not self.id or self._handed_over or self.info.resume_key != key:
            return False
        self._handed_over = True
        get_node().detach(self.id, self)
        asyncio.get_running_loop().create_task(self.close(CloseCode.RESUMED_ELSEWHERE, "resumed elsewhere"))
        return True

    # -- what the client is told -----------------------------------------------------------
    def session_params(self) -> dict[str, Any]:
        """The recovery members of ``rpc.connected`` (empty without recovery)."""
        params: dict[str, Any] = {}
        if self._token is not None:
            window = recovery.window_of(self)
            params["recovery"] = {"token": str(self._token), "offset": self._offset, "window": window}
        if self.resumed:
            params.update(recovered=True, replayed=self._missed)
        elif self._failed is not None:
            params.update(recovered=False, recovery_failed=self._failed)
        return params

    def replay(self) -> None:
        """Queue the missed notifications (once), ahead of frames queued meanwhile, in the
        socket's encoding (a frame that has none there is dropped and counted)."""
        # In the socket's encoding, as every frame pushed: a MessagePack socket gets binary.
        translated = (self.writer.translated(message) for message in map(frame, self._replay))
        frames = [(message, size_of(message)) for message in translated if message is not None]
        self._replay = ()
        self.writer.outbox.extend(frames)

    async def send_notification(self, method: str, /, *args: Any, **kwargs: Any) -> bool:
        """Queue a JSON-RPC notification to this client; False if dropped (and counted).

        Like :meth:`send_frame`, a drop is a result, not an exception: the
        handler's own connection may close at any moment. Journaled first
        (with its offset) when the socket is recoverable, so a notification
        dropped because the connection dropped is replayed if it resumes.
        Positional *or* named params, not both (``TypeError``).
        """
        text = protocol.encode_notification(method, params_of(args, kwargs))
        if self._token is not None:
            text = await recovery.keep(self.handler_name, "ids", (self.id,), text)
        return await self.send_frame(text)

    async def notify(self, method: str, /, *args: Any, **kwargs: Any) -> bool:
        """Deprecated: :meth:`send_notification`. ``Manager.notify`` (sync) and
        ``Manager.anotify`` raise ``SocketNotFound``; this returns a bool, so it
        was renamed to say so. Warns ``DeprecationWarning``."""
        warnings.warn(
            "WebSocketHandler.notify() is deprecated: use send_notification(), which returns "
            "False when dropped (Manager.notify/anotify raise SocketNotFound instead)",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self.send_notification(method, *args, **kwargs)
