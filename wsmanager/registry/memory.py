"""The in-memory registry: one process, zero set-up, the default.

Every entry lives in this process's memory, so ``count()``, ``ids()`` and
group members see only the sockets of this process. Use it for development,
tests and single-process deployments; use the Redis backend when several
server processes share the load (see docs/scaling.md).

All operations complete without yielding to the event loop, so each one is
atomic with respect to the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import SocketNotFound
from .base import ConnectionInfo, RegistryBackend

__all__ = ["InMemoryRegistry"]


class _Namespace:
    """The data of one handler: sockets, groups and users."""

    __slots__ = ("groups", "sockets", "users")

    def __init__(self) -> None:
        self.sockets: dict[str, ConnectionInfo] = {}
        self.groups: dict[str, dict[str, None]] = {}  # group -> ordered set of ids
        self.users: dict[str, dict[str, None]] = {}


class InMemoryRegistry(RegistryBackend):
    """A registry kept in dictionaries of this process."""

    def __init__(self) -> None:
        self._ns: dict[str, _Namespace] = {}

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

    async def add(self, info: ConnectionInfo) -> None:
        space = self._space(info.handler)
        space.sockets[info.id] = info
        for group in info.groups:
            space.groups.setdefault(group, {})[info.id] = None
        if info.user_id is not None:
            space.users.setdefault(info.user_id, {})[info.id] = None

    async def remove(self, handler: str, socket_id: str) -> ConnectionInfo | None:
        space = self._space(handler)
        info = space.sockets.pop(socket_id, None)
        if info is None:
            return None
        for group in info.groups:
            _discard(space.groups, group, socket_id)
        if info.user_id is not None:
            _discard(space.users, info.user_id, socket_id)
        return info

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
        space.sockets[socket_id] = info.with_changes(meta={**info.meta, **meta})

    async def group_add(self, handler: str, group: str, socket_id: str) -> None:
        space = self._space(handler)
        info = self._require(space, handler, socket_id)
        if group not in info.groups:
            space.sockets[socket_id] = info.with_changes(groups=info.groups | {group})
        space.groups.setdefault(group, {})[socket_id] = None

    async def group_discard(self, handler: str, group: str, socket_id: str) -> None:
        space = self._space(handler)
        info = space.sockets.get(socket_id)
        if info is not None and group in info.groups:
            space.sockets[socket_id] = info.with_changes(groups=info.groups - {group})
        _discard(space.groups, group, socket_id)

    async def group_members(self, handler: str, group: str) -> list[str]:
        return list(self._space(handler).groups.get(group, ()))

    async def groups(self, handler: str) -> list[str]:
        return list(self._space(handler).groups)

    async def user_sockets(self, handler: str, user_id: str) -> list[str]:
        return list(self._space(handler).users.get(user_id, ()))

    async def remove_node(self, node: str) -> list[ConnectionInfo]:
        gone = [
            info
            for space in self._ns.values()
            for info in list(space.sockets.values())
            if info.node == node
        ]
        for info in gone:
            await self.remove(info.handler, info.id)
        return gone

    async def clear(self) -> None:
        self._ns.clear()


def _discard(index: dict[str, dict[str, None]], key: str, socket_id: str) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(socket_id, None)
        if not members:
            del index[key]
