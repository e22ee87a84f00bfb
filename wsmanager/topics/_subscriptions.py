"""A socket's subscriptions: ``rpc.subscribe`` and ``rpc.unsubscribe`` (docs/protocol.md, "Topics").

A subscription is membership of the registry group ``topic:<name>``, so
``notify_group``, presence and connection recovery see it like any group.

Subscribing, in this order (the race between the history read and live
publications is closed by it):

1. the params are checked (-32602), a pattern found (-32010), the socket's
   ``max_subscriptions`` checked (-32012), the pattern's ``authorize`` awaited
   (-32011), before anything is written;
2. the *gate* opens: live publications of the topic reaching this socket are
   held (the socket's writer hands each frame to it first);
3. the socket joins the group: from here on every publication reaches it;
4. the history is read (its position, and with ``since`` what came after it),
   then ``initial`` runs: since a publisher appends before it reads the
   group's members, every publication is either in that read or held;
5. the missed publications are written, in offset order, before the answer;
6. after the answer, the gate closes: the held publications whose offset is
   greater than the answer's are written, the others (already in the
   replay, or in ``state``) dropped.

Guarantees: with ``recovered`` true, every publication after ``since``
reaches the client exactly once and in offset order, then the live ones;
without ``since``, every publication after the answer's ``offset``.
``state`` (when the pattern has ``initial`` and the subscribe did not
recover: no ``since``, or ``recovered`` false) is computed after the
position was read: it reflects every
publication up to ``offset``, and may already reflect some after it (apply
publications idempotently). The replay goes out in chunks, each after the
client has read all but 64 KiB of what came before, so that a long replay
is paced by the client instead of closing a slow one. Live publications
held meanwhile are bounded by ``MAX_OUTGOING_QUEUE`` per topic being
subscribed, as the socket's outgoing queue is: past it the socket is
closed with 1013 "too slow" and the publications dropped (counted
``dropped_overflow``), as a full outgoing queue would. Non-guarantee: publications of a topic
whose subscribe failed after the join (the history could not be read) are
dropped for that socket, and it leaves the group again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from wsmanager_client.protocol import INVALID_PARAMS, UNAVAILABLE

from .._conf import get_settings
from ..connection._outbox import Message, frame
from ..exceptions import RpcError, SocketNotFound
from ..observe._counters import Count, bump
from ..registry import ConnectionInfo
from ._history import FRAME_PREFIX, Position, Publication
from ._patterns import GROUP_PREFIX, MAX_TOPIC_LENGTH, Topic, group_of, match
from ._store import bounds, get_history

__all__ = [
    "NOT_AUTHORIZED",
    "TOO_MANY",
    "UNKNOWN_TOPIC",
    "Subscriber",
    "Subscriptions",
]

logger = logging.getLogger(__name__)

#: No topic pattern of the handler matches the name.
UNKNOWN_TOPIC = -32010
#: The pattern's ``authorize`` said no.
NOT_AUTHORIZED = -32011
#: The socket holds ``max_subscriptions`` subscriptions already.
TOO_MANY = -32012

#: The close code of a socket that cannot keep up (as the writer's, RFC 6455's 1013).
TRY_AGAIN_LATER = 1013
#: Replayed publications written between two waits for the client to read.
REPLAY_CHUNK = 100


class Gated(Protocol):
    """The socket's writer, as subscribing needs it."""

    gate: Callable[[Message], bool] | None

    def push(self, message: Message) -> bool: ...

    async def drained(self) -> None: ...

    def close_soon(self, code: int, reason: str) -> None: ...


class Subscriber(Protocol):
    """What subscribing needs of a socket (an :class:`wsmanager.RpcHandler`)."""

    id: str
    handler_name: str
    topics: Sequence[Topic]
    max_subscriptions: int

    @property
    def writer(self) -> Gated: ...

    @property
    def info(self) -> ConnectionInfo: ...

    async def join(self, group: str) -> None: ...

    async def leave(self, group: str) -> None: ...


@dataclass
class _Pending:
    topic: str
    #: Publication frames held: (offset, epoch, message).
    held: list[tuple[int, str, Message]] = field(default_factory=list)
    #: While True, the gate lets this topic's frames through (the replay itself).
    passing: bool = False
    #: Once answered: the position the answer gave (held frames at or below it are dropped).
    answered: Position | None = None
    #: The socket was subscribed before this subscribe began.
    was_member: bool = False
    #: The task that runs the call, which writes its answer (and then settles).
    owner: asyncio.Task[Any] | None = field(default_factory=asyncio.current_task)


def _bad(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, "Invalid params", message)


def parse_subscribe(params: Any) -> tuple[str, Position | None]:
    """``{"topic": str, "since"?: {"offset": int, "epoch": str}}``; -32602 otherwise."""
    if not isinstance(params, Mapping):
        raise _bad('params must be an object: {"topic": str, "since"?: {"offset": int, "epoch": str}}')
    extra = set(params) - {"topic", "since"}
    if extra:
        raise _bad(f"unknown params: {', '.join(sorted(map(str, extra)))}")
    name = parse_topic(params.get("topic"))
    since = params.get("since")
    if since is None:
        return name, None
    if not isinstance(since, Mapping) or set(since) != {"offset", "epoch"}:
        raise _bad('since must be {"offset": int, "epoch": str}')
    offset, epoch = since["offset"], since["epoch"]
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**63:
        raise _bad("since.offset must be an integer, 0 or more")
    if not isinstance(epoch, str) or not 0 < len(epoch) <= 64:
        raise _bad("since.epoch must be a string of 1 to 64 characters")
    return name, Position(offset, epoch)


def parse_topic(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise _bad("topic must be a non-empty string")
    if len(name) > MAX_TOPIC_LENGTH:
        raise _bad(f"topic is longer than {MAX_TOPIC_LENGTH} characters")
    return name


def peek(text: str) -> tuple[str, int, str] | None:
    """(topic, offset, epoch) of a publication frame; None for any other frame."""
    if not text.startswith(FRAME_PREFIX):
        return None
    try:
        params = json.loads(text)["params"]
        return str(params["topic"]), int(params["offset"]), str(params["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


class Subscriptions:
    """The subscribe and unsubscribe calls of one socket (see the module)."""

    def __init__(self, socket: Subscriber) -> None:
        self.socket = socket
        self._pending: dict[str, _Pending] = {}

    # -- the gate -------------------------------------------------------------------
    def _gate(self, message: Message) -> bool:
        """The writer's gate: True when it took ``message`` (held until the answer)."""
        text = message.get("text")
        if not isinstance(text, str):
            return False
        found = peek(text)
        if found is None:
            return False
        pending = self._pending.get(found[0])
        if pending is None or pending.passing:
            return False
        if len(pending.held) >= get_settings().max_outgoing_queue:
            bump(Count.DROPPED_OVERFLOW)
            self.socket.writer.close_soon(TRY_AGAIN_LATER, "too slow")
            return True
        pending.held.append((found[1], found[2], message))
        return True

    def _open(self, pending: _Pending) -> None:
        self._pending[pending.topic] = pending
        self.socket.writer.gate = self._gate

    def _close(self, pending: _Pending, deliver: bool) -> None:
        """Stop holding ``pending``'s topic; write what it held when ``deliver`` (newer
        than its answer, when it was answered), else drop it (counted)."""
        if self._pending.get(pending.topic) is pending:
            del self._pending[pending.topic]
        if not self._pending:
            self.socket.writer.gate = None
        answered = pending.answered
        for offset, epoch, message in pending.held:
            fresh = answered is None or epoch != answered.epoch or offset > answered.offset
            if deliver and fresh:
                self.socket.writer.push(message)
            elif deliver:
                pass  # a duplicate of the replay (or of ``state``): dropped on purpose
            else:
                bump(Count.DROPPED_SUBSCRIBE_FAILED)
        pending.held.clear()

    def settle(self) -> None:
        """The answers of the calls this task ran are written: close the gates they left open
        (another task's answered subscribe waits for its own answer, e.g. later in its batch)."""
        task = asyncio.current_task()
        for pending in [p for p in self._pending.values() if p.answered is not None and p.owner is task]:
            self._close(pending, deliver=True)

    # -- the calls ---------------------------------------------------------------------
    async def subscribe(self, params: Any) -> dict[str, Any]:
        socket = self.socket
        name, since = parse_subscribe(params)
        found = match(socket.topics, name)
        if found is None:
            raise RpcError(UNKNOWN_TOPIC, "Unknown topic", {"topic": name})
        pattern, kwargs = found
        group = group_of(name)
        groups = socket.info.groups
        was_member = group in groups
        if not was_member:
            held = sum(1 for g in groups if g.startswith(GROUP_PREFIX))
            if held >= socket.max_subscriptions:
                raise RpcError(TOO_MANY, "Too many subscriptions", {"max": socket.max_subscriptions})
        if name in self._pending:
            raise _bad(f"a subscribe of {name!r} is under way on this socket")
        if not await pattern.authorize(socket, **kwargs):
            raise RpcError(NOT_AUTHORIZED, "Not authorized", {"topic": name})
        pending = _Pending(name, was_member=was_member)
        self._open(pending)
        try:
            try:
                await socket.join(group)
            except SocketNotFound:  # the shared registry lost it (its process seemed dead): re-added soon
                raise RpcError(UNAVAILABLE, "Service temporarily unavailable", "try again") from None
            size, ttl = bounds(pattern)
            read = await get_history().read(socket.handler_name, name, since, limit=size, ttl=ttl)
            result: dict[str, Any] = {"topic": name}
            recovered = read.recovered and not read.more
            if pattern.has_initial and not recovered:
                result["state"] = await pattern.initial(socket, **kwargs)
            last = await self._replay(pending, read.publications) if recovered else None
        except BaseException:
            if not was_member:
                try:
                    await socket.leave(group)
                except Exception:
                    logger.warning("socket %s: leaving %s after a failed subscribe failed", socket.id, group)
            self._close(pending, deliver=was_member)
            raise
        offset = max(read.position.offset, last or 0)
        pending.answered = Position(offset, read.position.epoch)
        return {
            "topic": name,
            "offset": offset,
            "epoch": read.position.epoch,
            "recovered": recovered,
            **({"state": result["state"]} if "state" in result else {}),
        }

    async def _replay(self, pending: _Pending, publications: list[Publication]) -> int | None:
        """Write the missed publications in order, paced by the client; the last offset."""
        writer = self.socket.writer
        last = None
        for start in range(0, len(publications), REPLAY_CHUNK):
            if start:
                await writer.drained()
            pending.passing = True
            try:
                for publication in publications[start : start + REPLAY_CHUNK]:
                    writer.push(frame(publication.frame()))
                    last = publication.offset
            finally:
                pending.passing = False
        return last

    async def unsubscribe(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, Mapping) or set(params) != {"topic"}:
            raise _bad('params must be {"topic": str}')
        name = parse_topic(params["topic"])
        group = group_of(name)
        if group in self.socket.info.groups:
            await self.socket.leave(group)
        return {"topic": name}
