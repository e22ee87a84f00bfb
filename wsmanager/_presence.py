"""Presence: who is in a group, one entry per user, and a hook that hears it change.

Within a group, every socket of one user is one :class:`Member` (several
tabs, several devices, several processes); a socket without a user (not
logged in) is a member on its own. ``Manager.apresence(group)`` lists the
members. A handler class's ``on_presence(group, event, member)`` (see
:mod:`wsmanager.handlers._hooks`) hears ``"joined"`` when a member's first socket
enters a group and ``"left"`` when its last socket leaves it (``leave()``, a
close, or the crash of the process that held it).

Bursts: with ``presence_interval`` set, the class's
``on_presence_changes(group, changes)`` hears each group's changes as an
ordered list of ``(event, member)``: the first change of a quiet group at
once, alone; the changes that follow within the interval together, as net
changes (a change and its undoing cancel out), at the interval's end; and
so on while changes keep coming. 1,000 sockets joining one room then cost
an announcement per interval instead of one per member (whose fan-out to
the room would be quadratic). Gathered per process that made the changes.

Guarantees:

* The registry decides transitions atomically (see
  :mod:`wsmanager.registry._base`): two tabs of one user joining at the same
  moment give one ``joined``, closing both at once one ``left``, whichever
  processes they are on.
* ``on_presence`` runs in the process that made the change: the one that
  called ``add_to_group`` / ``remove_from_group``, the one whose socket
  closed, or, for sockets of a process that died or stopped, whichever live
  process took the departure from the registry on its heartbeat (within a
  heartbeat interval of the reaping, itself at most ``node_ttl`` after the
  crash with the Redis registry).
* An exception in ``on_presence`` is logged and never reaches the caller.

This module owns "a registry change and its announcement": :func:`join`,
:func:`leave`, :func:`release` and :func:`restore` make the change and
announce what it caused, so no caller can do one without the other.

Non-guarantees: events are announced at most once (a process that dies
between the change and the hook loses the event). Events of one member made
by different processes may be announced in either order, and a process
without a handler class of that name (e.g. a management command that did
not import it) logs a warning and drops the event. ``apresence()`` is the
source of truth; a client that cares should re-read it after reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _handler_classes as catalog
from . import _state
from .exceptions import ConfigurationError
from .registry import ConnectionInfo, Departure, get_registry

__all__ = [
    "Change",
    "Member",
    "PresenceEvent",
    "announce",
    "announce_departures",
    "join",
    "leave",
    "members_of",
    "release",
    "reset",
    "restore",
]

logger = logging.getLogger(__name__)

PresenceEvent = Literal["joined", "left"]

PresenceHook = Callable[[str, PresenceEvent, "Member"], Awaitable[None]]


@dataclass(frozen=True)
class Member:
    """One member of a group: a user (all its sockets there), or one anonymous socket.

    ``key`` is the user id, or ``"socket:<id>"`` for a socket without a user
    (exact rule: :func:`wsmanager.registry._base.member_key`).
    ``socket_ids`` are ordered by connection time, earliest first, and
    ``meta`` is the meta of the earliest one. In a ``left`` event the member
    has no socket left in the group: ``socket_ids`` holds the socket whose
    departure emptied it, and ``meta`` that socket's meta.
    """

    key: str
    user_id: str | None
    socket_ids: tuple[str, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, info: ConnectionInfo) -> Member:
        """The member ``info`` belongs to, seen through that one socket."""
        return cls(key=info.member, user_id=info.user_id, socket_ids=(info.id,), meta=info.meta)

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict for APIs and clients."""
        return {
            "key": self.key,
            "user_id": self.user_id,
            "socket_ids": list(self.socket_ids),
            "meta": dict(self.meta),
        }


def members_of(infos: Iterable[ConnectionInfo]) -> list[Member]:
    """Fold socket entries into members, ordered by their earliest socket's connection time."""
    by_key: dict[str, list[ConnectionInfo]] = {}
    for info in sorted(infos, key=lambda i: (i.connected_at, i.id)):
        by_key.setdefault(info.member, []).append(info)
    return [
        Member(
            key=key,
            user_id=socks[0].user_id,
            socket_ids=tuple(s.id for s in socks),
            meta=socks[0].meta,
        )
        for key, socks in by_key.items()
    ]


_unknown: set[str] = set()  # handler names already warned about


Change = tuple[PresenceEvent, "Member"]


class _Changes:
    """The net changes of one group within one interval, in order, by member key."""

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[str, Change] = {}

    def add(self, event: PresenceEvent, member: Member) -> None:
        earlier = self.by_key.pop(member.key, None)
        if earlier is None or earlier[0] == event:  # a change and its undoing cancel out
            self.by_key[member.key] = (event, member)


_gathering: dict[tuple[str, str], _Changes] = {}
_flushing: set[asyncio.Task[None]] = set()


def reset() -> None:
    """Forget the changes being gathered and warn again about unknown handler names (tests)."""
    _unknown.clear()
    _gathering.clear()


def _class(handler: str) -> type[Any] | None:
    try:
        return catalog.handler_class(handler)
    except ConfigurationError:
        if handler not in _unknown:
            _unknown.add(handler)
            logger.warning(
                "presence events of handler %r are dropped in this process: no handler class "
                "has that name here (import the module that defines it)",
                handler,
            )
        return None


def _open_window(cls: type[Any], key: tuple[str, str]) -> None:
    _gathering[key] = _Changes()
    asyncio.get_running_loop().call_later(cls.presence_interval, _flush, cls, key)


async def _gather(cls: type[Any], group: str, event: PresenceEvent, member: Member) -> None:
    """The first change of a quiet group is announced at once; those that follow
    within ``presence_interval`` are gathered and announced together."""
    if not getattr(cls, "presence_interval", None):
        return
    key = (cls.handler_name, group)
    window = _gathering.get(key)
    if window is not None:
        window.add(event, member)
        return
    _open_window(cls, key)
    await _announce_changes(cls, group, [(event, member)])


def _flush(cls: type[Any], key: tuple[str, str]) -> None:
    """End of an interval: announce what it gathered, and keep gathering while changes come."""
    window = _gathering.pop(key, None)
    if window is None or not window.by_key:
        return  # quiet: the next change is announced at once
    _open_window(cls, key)
    changes = list(window.by_key.values())
    task = asyncio.get_running_loop().create_task(_announce_changes(cls, key[1], changes))
    _flushing.add(task)
    task.add_done_callback(_flushing.discard)


async def _announce_changes(cls: type[Any], group: str, changes: list[Change]) -> None:
    try:
        await cls.on_presence_changes(group, changes)
    except Exception:
        logger.exception("on_presence_changes of handler %r failed (in %r)", cls.handler_name, group)


async def announce(handler: str, group: str, event: PresenceEvent, member: Member) -> None:
    """Await ``on_presence(group, event, member)`` of the handler class, and gather
    the change for its ``on_presence_changes`` when it has a ``presence_interval``.

    Exceptions are logged, never raised.
    """
    cls = _class(handler)
    if cls is None:
        return
    await _gather(cls, group, event, member)
    hook: PresenceHook | None = getattr(cls, "on_presence", None)
    if hook is None:
        return
    try:
        await hook(group, event, member)
    except Exception:
        logger.exception("on_presence of handler %r failed (%s %s in %r)", handler, member.key, event, group)


async def _announce_departure(departure: Departure | None) -> None:
    if departure is None:
        return
    for group in sorted(departure.left):
        await announce(departure.handler, group, "left", Member.of(departure))


async def announce_departures(departures: Iterable[Departure]) -> None:
    """Announce ``left`` for the groups each departure's member left.

    For departures the registry queued (``take_departures()``): the change
    was made by a process that could not announce it.
    """
    for departure in departures:
        await _announce_departure(departure)


# -- changes and their announcements ------------------------------------------------
async def join(handler: str, group: str, socket_id: str) -> None:
    """Add a socket to a group; ``joined`` is announced when its member entered it."""
    joined = await get_registry().group_add(handler, group, socket_id)
    if joined is not None:
        await announce(handler, group, "joined", Member.of(joined))


async def leave(handler: str, group: str, socket_id: str) -> None:
    """Remove a socket from a group; ``left`` is announced when its member left it."""
    left = await get_registry().group_discard(handler, group, socket_id)
    if left is not None:
        await announce(handler, group, "left", Member.of(left))


async def release(
    handler: str, socket_id: str, node: str | None = None, key: str | None = None
) -> Departure | None:
    """Forget a closed socket; ``left`` is announced for each group its member left.

    With ``node`` (and ``key``), only if the socket is still routed to that
    node (and its entry is that connection's: it may have resumed). Returns
    the departure (None for an unknown id).
    Raises ``RegistryUnavailable`` when the store is down: nothing was
    announced, and the caller retries later (see :mod:`wsmanager.node._heartbeat`).
    """
    departure = await get_registry().remove(handler, socket_id, node, key)
    await _announce_departure(departure)
    return departure


async def restore(info: ConnectionInfo) -> None:
    """Re-add an entry the shared registry lost; ``joined`` is announced again
    for the groups its member entered (its loss may have been announced)."""
    for group in sorted(await get_registry().add(info)):
        await announce(info.handler, group, "joined", Member.of(info))


_state.owns(__name__, reset)
