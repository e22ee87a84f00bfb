"""Presence: who is in a group, one entry per user, and a hook that hears it change.

Within a group, every socket of one user is one :class:`Member` (several
tabs, several devices, several processes); a socket without a user (not
logged in) is a member on its own. ``Manager.apresence(group)`` lists the
members. A handler class that defines ::

    @classmethod
    async def on_presence(cls, group: str, event: str, member: Member) -> None: ...

hears ``"joined"`` when a member's first socket enters a group and
``"left"`` when its last socket leaves it (``leave()``, a close, or the crash
of the process that held it).

Guarantees:

* The registry decides transitions atomically (see
  :mod:`wsmanager.registry.base`): two tabs of one user joining at the same
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

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import catalog
from .exceptions import ConfigurationError
from .registry import ConnectionInfo, Departure, get_registry

__all__ = [
    "Member",
    "PresenceEvent",
    "announce",
    "announce_departures",
    "forget_warnings",
    "join",
    "leave",
    "members_of",
    "release",
    "restore",
]

logger = logging.getLogger("wsmanager.presence")

PresenceEvent = Literal["joined", "left"]

PresenceHook = Callable[[str, PresenceEvent, "Member"], Awaitable[None]]


@dataclass(frozen=True)
class Member:
    """One member of a group: a user (all its sockets there), or one anonymous socket.

    ``key`` is the user id, or ``"socket:<id>"`` for a socket without a user
    (exact rule: :func:`wsmanager.registry.base.member_key`).
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


def forget_warnings() -> None:
    """Warn again about handler names presence does not know (tests)."""
    _unknown.clear()


def _hook(handler: str) -> PresenceHook | None:
    try:
        cls = catalog.handler_class(handler)
    except ConfigurationError:
        if handler not in _unknown:
            _unknown.add(handler)
            logger.warning(
                "presence events of handler %r are dropped in this process: no handler class "
                "has that name here (import the module that defines it)",
                handler,
            )
        return None
    hook: PresenceHook | None = getattr(cls, "on_presence", None)
    return hook


async def announce(handler: str, group: str, event: PresenceEvent, member: Member) -> None:
    """Await ``on_presence(group, event, member)`` of the handler class, if it has one.

    Exceptions are logged, never raised.
    """
    hook = _hook(handler)
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


async def release(handler: str, socket_id: str) -> Departure | None:
    """Forget a closed socket; ``left`` is announced for each group its member left.

    Returns the departure (None for an unknown id). Raises
    ``RegistryUnavailable`` when the store is down: nothing was announced,
    and the caller retries later (see :mod:`wsmanager.upkeep`).
    """
    departure = await get_registry().remove(handler, socket_id)
    await _announce_departure(departure)
    return departure


async def restore(info: ConnectionInfo) -> None:
    """Re-add an entry the shared registry lost; ``joined`` is announced again
    for the groups its member entered (its loss may have been announced)."""
    for group in sorted(await get_registry().add(info)):
        await announce(info.handler, group, "joined", Member.of(info))
