"""The in-memory registry: one process, zero set-up, the default.

Every entry lives in this process's memory, so ``count()``, ``ids()`` and
group members see only the sockets of this process. Use it for development,
tests and single-process deployments; use the Redis backend when several
server processes share the load (see docs/scaling.md).

All operations complete without yielding to the event loop, so each one is
atomic with respect to the others, presence transitions included.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import SocketNotFound
from ._base import PARKED, Claim, ConnectionInfo, Departure, RegistryBackend

__all__ = ["InMemoryRegistry"]


class _Namespace:
    """The data of one handler: sockets, groups, users and presence counters."""

    __slots__ = ("groups", "parked", "presence", "sockets", "users")

    def __init__(self) -> None:
        self.sockets: dict[str, ConnectionInfo] = {}
        self.parked: dict[str, float] = {}  # socket id -> end of its window (Unix time)
        self.groups: dict[str, dict[str, None]] = {}  # group -> ordered set of ids
        self.users: dict[str, dict[str, None]] = {}
        self.presence: dict[str, dict[str, int]] = {}  # group -> member key -> sockets

    def join(self, group: str, info: ConnectionInfo) -> bool:
        """Put the socket in ``group``; True if its member joined the group."""
        members = self.groups.setdefault(group, {})
        if info.id in members:
            return False
        members[info.id] = None
        counts = self.presence.setdefault(group, {})
        counts[info.member] = counts.get(info.member, 0) + 1
        return counts[info.member] == 1

    def leave(self, group: str, info: ConnectionInfo) -> bool:
        """Take the socket out of ``group``; True if its member left the group."""
        members = self.groups.get(group)
        if members is None or info.id not in members:
            return False
        _discard(self.groups, group, info.id)
        counts = self.presence.get(group, {})
        left = counts.get(info.member, 0) <= 1
        if left:
            counts.pop(info.member, None)
            if not counts:
                self.presence.pop(group, None)
        else:
            counts[info.member] -= 1
        return left


class InMemoryRegistry(RegistryBackend):
    """A registry kept in dictionaries of this process."""

    def __init__(self) -> None:
        self._ns: dict[str, _Namespace] = {}
        self._departures: list[Departure] = []
        self._stats: dict[str, dict[str, int]] = {}
        self._activity: dict[str, dict[str, float]] = {}  # node -> socket id -> last activity

    def _space(self, handler: str) -> _Namespace:
        space = self._ns.get(handler)
        if space is None:
            space = self._ns[handler] = _Namespace()
        return space

    def _require(self, space: _Namespace, handler: str, socket_id: str) -> ConnectionInfo:
        info = space.sockets.get(socket_id)
        if info is None:
            raise SocketNotFound(socket_id, handler)
        return info

    async def add(self, info: ConnectionInfo) -> frozenset[str]:
        space = self._space(info.handler)
        old = self._drop(space, info.id)
        space.sockets[info.id] = info
        joined = {group for group in info.groups if space.join(group, info)}
        if info.user_id is not None:
            space.users.setdefault(info.user_id, {})[info.id] = None
        if old is not None and old.member == info.member:
            joined -= old.left  # the member was there all along
        return frozenset(joined)

    async def remove(
        self, handler: str, socket_id: str, node: str | None = None, key: str | None = None
    ) -> Departure | None:
        space = self._space(handler)
        if node is not None and _route(space, socket_id) != node:
            return None
        if key is not None and (info := space.sockets.get(socket_id)) is not None and info.resume_key != key:
            return None
        return self._drop(space, socket_id)

    def _drop(self, space: _Namespace, socket_id: str) -> Departure | None:
        info = space.sockets.pop(socket_id, None)
        space.parked.pop(socket_id, None)
        if info is None:
            return None
        left = {group for group in info.groups if space.leave(group, info)}
        if info.user_id is not None:
            _discard(space.users, info.user_id, socket_id)
        return Departure.of(info, left)

    async def get(self, handler: str, socket_id: str) -> ConnectionInfo | None:
        return self._space(handler).sockets.get(socket_id)

    async def get_many(self, handler: str, socket_ids: Iterable[str]) -> list[ConnectionInfo]:
        sockets = self._space(handler).sockets
        return [info for sid in socket_ids if (info := sockets.get(sid)) is not None]

    async def ids(self, handler: str) -> list[str]:
        return list(self._space(handler).sockets)

    async def count(self, handler: str) -> int:
        return len(self._space(handler).sockets)

    async def update_meta(self, handler: str, socket_id: str, meta: Mapping[str, Any]) -> None:
        space = self._space(handler)
        info = self._require(space, handler, socket_id)
        space.sockets[socket_id] = info.with_meta(meta)

    async def group_add(self, handler: str, group: str, socket_id: str) -> ConnectionInfo | None:
        space = self._space(handler)
        info = self._require(space, handler, socket_id)
        if group in info.groups:
            return None
        info = space.sockets[socket_id] = info.with_group(group)
        return info if space.join(group, info) else None

    async def group_discard(self, handler: str, group: str, socket_id: str) -> ConnectionInfo | None:
        space = self._space(handler)
        info = space.sockets.get(socket_id)
        if info is None or group not in info.groups:
            return None
        info = space.sockets[socket_id] = info.without_group(group)
        return info if space.leave(group, info) else None

    async def group_members(self, handler: str, group: str, limit: int | None = None) -> list[str]:
        members = self._space(handler).groups.get(group, {})
        return list(members) if limit is None else list(itertools.islice(members, max(0, limit)))

    async def group_size(self, handler: str, group: str) -> int:
        return len(self._space(handler).groups.get(group, ()))

    async def member_count(self, handler: str, group: str) -> int:
        return len(self._space(handler).presence.get(group, ()))

    async def groups(self, handler: str) -> list[str]:
        return list(self._space(handler).groups)

    async def user_sockets(self, handler: str, user_id: str) -> list[str]:
        return list(self._space(handler).users.get(user_id, ()))

    async def nodes_of(self, handler: str, socket_ids: Iterable[str]) -> dict[str, list[str]]:
        space = self._space(handler)
        routes: dict[str, list[str]] = {}
        for sid in socket_ids:
            if sid in space.sockets:
                routes.setdefault(_route(space, sid), []).append(sid)
        return routes

    async def remove_node(self, node: str) -> list[Departure]:
        gone: list[Departure] = []
        now = time.time()
        for space in self._ns.values():
            for info in list(space.sockets.values()):
                if _route(space, info.id) != node:
                    continue
                if info.recovery > 0:
                    space.parked[info.id] = now + info.recovery
                elif (departure := self._drop(space, info.id)) is not None:
                    gone.append(departure)
        self._departures.extend(d for d in gone if d.left)
        self._stats.pop(node, None)
        return gone

    async def park(self, handler: str, socket_id: str, node: str, until: float, key: str = "") -> bool:
        space = self._space(handler)
        info = space.sockets.get(socket_id)
        if info is None or _route(space, socket_id) != node or (key and info.resume_key != key):
            return False
        space.parked[socket_id] = until
        return True

    async def claim(self, expected: ConnectionInfo, new: ConnectionInfo) -> Claim:
        space = self._space(expected.handler)
        current = space.sockets.get(expected.id)
        if current is None:
            return Claim("unknown")
        if current != expected:
            return Claim("changed")
        previous = _route(space, expected.id)
        until = 0.0
        if previous == PARKED:
            until = space.parked[expected.id]
            if until < time.time():
                return Claim("expired", previous)
            del space.parked[expected.id]
        space.sockets[expected.id] = new
        return Claim("ok", previous, until)

    async def spoil(self, handler: str, socket_ids: list[str]) -> None:
        parked = self._space(handler).parked
        for sid in socket_ids:
            if sid in parked:
                parked[sid] = 0.0

    async def expire_parked(self, limit: int = 1000) -> int:
        now, expired = time.time(), 0
        for space in self._ns.values():
            for sid, until in list(space.parked.items()):
                if expired >= limit:
                    return expired
                if until < now and (departure := self._drop(space, sid)) is not None:
                    expired += 1
                    if departure.left:
                        self._departures.append(departure)
        return expired

    async def take_departures(self, limit: int = 1000) -> list[Departure]:
        taken = self._departures[:limit]
        del self._departures[:limit]
        return taken

    async def put_node_stats(self, node: str, stats: Mapping[str, int]) -> None:
        self._stats[node] = dict(stats)

    async def node_stats(self) -> dict[str, dict[str, int]]:
        return {node: dict(stats) for node, stats in self._stats.items()}

    # -- last activity (published by each node's heartbeat) -------------------
    async def put_node_activity(self, node: str, activity: Mapping[str, float]) -> None:
        self._activity[node] = dict(activity)

    async def last_activity(self, sockets: Iterable[ConnectionInfo]) -> dict[str, float]:
        found: dict[str, float] = {}
        for info in sockets:
            when = self._activity.get(info.node, {}).get(info.id)
            if when is not None:
                found[info.id] = when
        return found

    async def clear(self) -> None:
        self._ns.clear()
        self._departures.clear()
        self._stats.clear()
        self._activity.clear()


def _route(space: _Namespace, socket_id: str) -> str:
    """Where a socket is routed: :data:`PARKED`, else the node of its entry."""
    if socket_id in space.parked:
        return PARKED
    info = space.sockets.get(socket_id)
    return "" if info is None else info.node


def _discard(index: dict[str, dict[str, None]], key: str, socket_id: str) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(socket_id, None)
        if not members:
            del index[key]
