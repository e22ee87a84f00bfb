"""``Manager``: query and send to a handler's sockets from anywhere.

Every handler class has one (``ChatHandler.manager``), and
:func:`get_manager` finds one by handler name, which is all another process
(a management command, a worker) needs.

Sync and async twins follow Django's rule: ``asend()`` is the coroutine,
``send()`` the same call for sync code (views, commands, workers). The sync
twin runs the coroutine with ``async_to_sync``; calling it from a running
event loop's thread raises, as Django's do.

Delivery guarantees (see docs/protocol.md): frames are handed over
at-most-once, in order per sender and socket; a send to a socket that
closes before the frame is written drops the frame and counts it
(:mod:`wsmanager.observe._counters`). Methods aimed at one id raise :class:`SocketNotFound`
for an id that is not open; methods aimed at many sockets skip the ones that
are gone and return how many sockets the frame was handed to.

Users: methods taking ``user`` accept a user object (its ``pk`` is used) or
a primary key; user ids are stored as ``str(pk)``. They reach every open
socket of that user in every process. Presence (``apresence``) lists a
group's members, one per user; see :mod:`wsmanager._presence`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.db import transaction

from wsmanager_client import protocol
from wsmanager_client.protocol import params_of

from . import _presence as presence
from . import _recovery as recovery
from . import topics
from ._aio import sync_twin as _sync_twin
from ._conf import get_settings
from ._presence import Member, members_of
from .connection._outbox import Message, frame
from .exceptions import SocketNotFound, SocketParked
from .node._hub import get_node
from .observe._counters import Count, bump
from .registry import PARKED, ConnectionInfo, get_registry
from .registry._journal import Kind
from .topics import _store as topic_store

__all__ = ["Manager", "get_manager"]

logger = logging.getLogger(__name__)

_MISSING: Any = object()


def _message(data: str | bytes | None, json: Any) -> Message:
    if json is not _MISSING:
        if data is not None:
            raise TypeError("pass either data or json=, not both")
        return frame(protocol.dumps(json))
    if data is None:
        raise TypeError("nothing to send: pass data (str or bytes) or json=")
    return frame(data)


def _user_id(user: Any) -> str:
    """The registry's user id of a user object or a primary key: ``str(pk)``."""
    return str(getattr(user, "pk", user))


class Manager:
    """The sockets of one handler, as seen from this process (and, with a shared
    registry such as Redis, from the whole cluster)."""

    def __init__(self, handler_name: str) -> None:
        self.handler_name = handler_name

    def __repr__(self) -> str:
        return f"<Manager {self.handler_name!r}>"

    # -- queries -----------------------------------------------------------------
    async def aget(self, socket_id: str) -> ConnectionInfo:
        """The registry entry of an open socket; SocketNotFound otherwise."""
        info = await get_registry().get(self.handler_name, socket_id)
        if info is None:
            raise SocketNotFound(socket_id, self.handler_name)
        return info

    async def aget_many(self, socket_ids: Iterable[str]) -> list[ConnectionInfo]:
        """Entries of the ids that are open, in the order given; others skipped."""
        return await get_registry().get_many(self.handler_name, socket_ids)

    async def aexists(self, socket_id: str) -> bool:
        """Whether a socket with this id is open."""
        return await get_registry().get(self.handler_name, socket_id) is not None

    async def aids(self) -> list[str]:
        """Ids of every open socket (order unspecified)."""
        return await get_registry().ids(self.handler_name)

    async def acount(self) -> int:
        """How many sockets are open."""
        return await get_registry().count(self.handler_name)

    async def aall(self) -> list[ConnectionInfo]:
        """Entries of every open socket."""
        registry = get_registry()
        return await registry.get_many(self.handler_name, await registry.ids(self.handler_name))

    async def agroups(self) -> list[str]:
        """Names of the groups that have members."""
        return await get_registry().groups(self.handler_name)

    async def agroup_members(self, group: str, *, limit: int | None = None) -> list[str]:
        """Ids of the sockets in ``group`` (empty for an unknown group).

        With ``limit``, at most that many, read at a cost bounded by ``limit``
        (which ones, when the group has more, is unspecified); use it for
        anything shown to clients, since a group has no size bound of its own.
        """
        if limit is None:
            return await get_registry().group_members(self.handler_name, group)
        return await get_registry().group_members(self.handler_name, group, limit)

    async def agroup_size(self, group: str) -> int:
        """How many sockets are in ``group``, parked ones included (one registry read)."""
        return await get_registry().group_size(self.handler_name, group)

    async def agroups_of(self, socket_id: str) -> frozenset[str]:
        """The groups a socket is in; SocketNotFound if it is not open."""
        return (await self.aget(socket_id)).groups

    async def auser_sockets(self, user: Any) -> list[str]:
        """Ids of the open sockets of a user (a user object or its primary key)."""
        return await get_registry().user_sockets(self.handler_name, _user_id(user))

    async def ais_online(self, user: Any) -> bool:
        """Whether the user (object or primary key) has an open socket in any process."""
        return bool(await self.auser_sockets(user))

    async def apresence(self, group: str, *, limit: int | None = None) -> list[Member]:
        """The members of ``group``: one per user, one per socket without a user.

        Ordered by their earliest socket's connection time (see
        :class:`~wsmanager._presence.Member`); empty for an unknown group.
        A snapshot read in two steps: a socket closing meanwhile is left out.

        With ``limit``, the members of at most ``limit`` of the group's sockets
        (so at most ``limit`` members, fewer when a user has several sockets
        there), read at a cost bounded by ``limit``; which ones, when the group
        has more, is unspecified. :meth:`amember_count` says how many there are.
        Without it, the answer grows with the group: bound it before sending it
        to a client (the demo's ``who()`` lists at most 100).
        """
        return members_of(await self.aget_many(await self.agroup_members(group, limit=limit)))

    async def amember_count(self, group: str) -> int:
        """How many members ``group`` has (users, and sockets without one), as
        :meth:`apresence` would list them whole; one registry read."""
        return await get_registry().member_count(self.handler_name, group)

    # -- groups and metadata ----------------------------------------------------------
    async def aadd_to_group(self, socket_id: str, group: str) -> None:
        """Add a socket to a group; it leaves it by itself when it closes.

        When the socket's member (its user, or the socket itself without a
        user) was not in the group yet, the handler's ``on_presence`` hook
        hears ``"joined"`` before this returns (see :mod:`wsmanager._presence`).
        """
        await presence.join(self.handler_name, group, socket_id)
        await self._regroup(socket_id, group, add=True)

    async def aremove_from_group(self, socket_id: str, group: str) -> None:
        """Remove a socket from a group (no-op if not a member or not open).

        When it was its member's last socket there, ``on_presence`` hears
        ``"left"`` before this returns.
        """
        await presence.leave(self.handler_name, group, socket_id)
        await self._regroup(socket_id, group, add=False)

    async def aupdate_meta(self, socket_id: str, **meta: Any) -> None:
        """Merge JSON-serialisable values into the socket's ``meta``."""
        await get_registry().update_meta(self.handler_name, socket_id, meta)
        self._mirror(socket_id, lambda info: info.with_meta(meta))

    async def _regroup(self, socket_id: str, group: str, *, add: bool) -> None:
        """After a group change in the registry: the socket's own process follows it.

        Here, at once (:meth:`_mirror`); in another process (shared registry), by a
        ``wsmanager.regroup`` message to its node, sent before this returns, so that
        a broadcast this process sends afterwards reaches that node after it. A
        parked socket needs none (its resume reads its groups from the registry).
        """
        self._mirror(socket_id, lambda info: info.with_group(group) if add else info.without_group(group))
        node = get_node()
        if socket_id in node.sockets or not get_registry().shared:
            return
        await node.start()
        for node_id in await get_registry().nodes_of(self.handler_name, [socket_id]):
            if node_id != PARKED:
                await node.regroup(self.handler_name, node_id, socket_id, group, add)

    def _mirror(self, socket_id: str, change: Callable[[ConnectionInfo], ConnectionInfo]) -> None:
        """Keep a local socket's ``info`` equal to what this process wrote.

        Changes made by other processes are not mirrored; the registry stays
        the source of truth, ``info`` is what a process re-adds if the shared
        registry loses the entry.
        """
        node = get_node()
        sock = node.sockets.get(socket_id)
        if sock is not None and sock.info.handler == self.handler_name:
            sock.info = change(sock.info)
            node.reindex(sock)

    # -- routing ------------------------------------------------------------------
    async def _routes(self, socket_ids: Iterable[str]) -> dict[str, list[str]]:
        """{node: ids}: local sockets need no registry round trip."""
        node = get_node()
        await node.start()
        local, remote = node.split(self.handler_name, socket_ids)
        routes = await get_registry().nodes_of(self.handler_name, remote) if remote else {}
        if local:
            routes.setdefault(node.id, []).extend(local)
        return routes

    async def _send(
        self, socket_ids: Iterable[str], message: Message, kept: bool | None
    ) -> tuple[int, dict[str, list[str]]]:
        """Deliver to ``socket_ids``: those open here at once, as they are met, then the
        rest where the registry says they are; (how many took it, the routes of the rest).
        Should the registry fail for the rest, the local ones have the frame already."""
        node = get_node()
        await node.start()
        taken, remote = node.deliver_here(self.handler_name, socket_ids, message)
        routes = await get_registry().nodes_of(self.handler_name, remote) if remote else {}
        if routes:
            taken += await node.deliver(self.handler_name, routes, message, kept=kept)
        return taken, routes

    async def _deliver_group(
        self, group: str, message: Message, kept: bool | None = None, exclude: Iterable[str] = ()
    ) -> int:
        """Deliver to the members of ``group`` but ``exclude``; how many took it.

        With a shared registry (Redis), the group's cost does not grow with its
        size: one registry read says which nodes hold members and how many
        (:meth:`~wsmanager.registry.RegistryBackend.group_nodes`), the local
        members take the frame at once (the node's index), and each other node
        gets one message without a member list. Parked members are counted
        as kept (the notification is in the journal, per group) or dropped; a
        notification that could not be kept spoils their windows, which needs
        their ids (read only then). Should the registry fail, nobody gets the
        frame and the caller gets the error (as for any send that needs the
        registry), never a broadcast that half happened and is reported failed.
        With the in-memory registry, the member list is read as before
        (everything is local but the parked).
        """
        registry = get_registry()
        skip = frozenset(exclude)
        if not registry.shared:
            return await self._deliver(self._without(await self.agroup_members(group), skip), message, kept)
        node = get_node()
        await node.start()
        nodes = await registry.group_nodes(self.handler_name, group, skip)
        here = node.group_here(self.handler_name, group) - skip
        taken = node.deliver_group_here(self.handler_name, group, message, skip)
        if nodes.pop(node.id, 0) != len(here) and await node.resync_group(self.handler_name, group):
            # The index disagreed with the registry (and is repaired): the members it missed
            # take the frame now.
            missed = node.group_here(self.handler_name, group) - skip - here
            taken += node.deliver_here(self.handler_name, missed, message)[0]
        taken += await node.deliver_group(self.handler_name, group, nodes, message, skip, kept=kept)
        if kept is False and nodes.get(PARKED):
            members = self._without(await self.agroup_members(group), skip)
            parked = (await registry.nodes_of(self.handler_name, members)).get(PARKED, [])
            if parked:
                await registry.spoil(self.handler_name, parked)
        return taken

    async def _deliver(self, socket_ids: Iterable[str], message: Message, kept: bool | None = None) -> int:
        return (await self._send(socket_ids, message, kept))[0]

    async def _deliver_one(self, socket_id: str, message: Message, kept: bool | None = None) -> None:
        taken, routes = await self._send([socket_id], message, kept)
        if taken == 0:
            if PARKED in routes:
                raise SocketParked(socket_id, self.handler_name)
            raise SocketNotFound(socket_id, self.handler_name)

    async def _notification(
        self, kind: Kind, target: tuple[str, ...], method: str, args: Any, kwargs: Any, exclude: Any = ()
    ) -> tuple[Message, bool]:
        """The frame of a notification, journaled first where the handler recovers
        (:mod:`wsmanager._recovery`); and whether it was (parked sockets keep it)."""
        text = protocol.encode_notification(method, params_of(args, kwargs))
        kept = await recovery.keep(self.handler_name, kind, target, text, frozenset(exclude))
        return frame(kept), kept is not text  # not kept: a parked socket cannot resume whole

    @staticmethod
    def _without(ids: list[str], exclude: Iterable[str]) -> list[str]:
        skip = set(exclude)
        return [sid for sid in ids if sid not in skip] if skip else ids

    # -- raw frames ----------------------------------------------------------------
    async def asend(self, socket_id: str, data: str | bytes | None = None, *, json: Any = _MISSING) -> None:
        """Send text (str), binary (bytes) or ``json=`` (encoded text) to one socket."""
        await self._deliver_one(socket_id, _message(data, json))

    async def asend_many(
        self, socket_ids: Iterable[str], data: str | bytes | None = None, *, json: Any = _MISSING
    ) -> int:
        """Send to several sockets; unknown ids are skipped. Returns how many took it."""
        return await self._deliver(socket_ids, _message(data, json))

    async def asend_group(
        self,
        group: str,
        data: str | bytes | None = None,
        *,
        json: Any = _MISSING,
        exclude: Iterable[str] = (),
    ) -> int:
        """Send to every member of ``group`` but ``exclude``; encoded once."""
        return await self._deliver_group(group, _message(data, json), None, exclude)

    async def asend_all(
        self, data: str | bytes | None = None, *, json: Any = _MISSING, exclude: Iterable[str] = ()
    ) -> int:
        """Send to every open socket of the handler but ``exclude``."""
        message = _message(data, json)
        return await self._deliver(self._without(await self.aids(), exclude), message)

    async def asend_user(self, user: Any, data: str | bytes | None = None, *, json: Any = _MISSING) -> int:
        """Send to every open socket of a user (object or primary key), in every process.

        Returns how many sockets took the frame: 0 for a user who is not connected.
        """
        message = _message(data, json)
        return await self._deliver(await self.auser_sockets(user), message)

    async def adisconnect(self, socket_id: str, code: int = 1000, reason: str = "") -> None:
        """Close a socket from the server side, wherever it is (a parked one is
        forgotten: it will not resume)."""
        routes = await self._routes([socket_id])
        if not routes:
            raise SocketNotFound(socket_id, self.handler_name)
        (node_id,) = routes
        if node_id == PARKED:  # it will not resume: its member's departure is announced
            await presence.release(self.handler_name, socket_id, PARKED)
            return
        await get_node().close_socket(self.handler_name, node_id, socket_id, code, reason)

    # -- JSON-RPC --------------------------------------------------------------------
    async def anotify(self, socket_id: str, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Send a JSON-RPC notification to one socket (no answer expected).

        With connection recovery, a parked socket takes it (kept for its resume)."""
        message, kept = await self._notification("ids", (socket_id,), method, args, kwargs)
        await self._deliver_one(socket_id, message, kept)

    async def anotify_many(self, socket_ids: Iterable[str], method: str, /, *args: Any, **kwargs: Any) -> int:
        """Notify several sockets; unknown ids are skipped. Returns how many took it."""
        ids = tuple(socket_ids)
        message, kept = await self._notification("ids", ids, method, args, kwargs)
        return await self._deliver(ids, message, kept)

    async def anotify_group(
        self, group: str, method: str, /, *args: Any, exclude: Iterable[str] = (), **kwargs: Any
    ) -> int:
        """Notify every member of ``group`` but ``exclude`` (``exclude`` is not a param).

        On a shared registry its cost does not grow with the group (see :meth:`_deliver_group`).
        """
        skip = tuple(exclude)
        message, kept = await self._notification("group", (group,), method, args, kwargs, skip)
        return await self._deliver_group(group, message, kept, skip)

    async def anotify_all(
        self, method: str, /, *args: Any, exclude: Iterable[str] = (), **kwargs: Any
    ) -> int:
        """Notify every open socket but ``exclude``."""
        skip = tuple(exclude)
        message, kept = await self._notification("all", (), method, args, kwargs, skip)
        return await self._deliver(self._without(await self.aids(), skip), message, kept)

    async def anotify_user(self, user: Any, method: str, /, *args: Any, **kwargs: Any) -> int:
        """Notify every open socket of a user; how many took it (0 if not connected)."""
        message, kept = await self._notification("user", (_user_id(user),), method, args, kwargs)
        return await self._deliver(await self.auser_sockets(user), message, kept)

    async def ainvoke(
        self, socket_id: str, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call a method of the client and return its result.

        Raises :class:`InvokeTimeout` after ``timeout`` seconds (default
        ``WSMANAGER["INVOKE_TIMEOUT"]``), :class:`RemoteError` when the client
        answers with an error, :class:`ConnectionClosed` when the socket
        closes first, and :class:`SocketNotFound` for an unknown id.
        """
        return await self.ainvoke_params(socket_id, method, params_of(args, kwargs), timeout=timeout)

    async def ainvoke_params(
        self,
        socket_id: str,
        method: str,
        params: Sequence[Any] | Mapping[str, Any],
        /,
        *,
        timeout: float | None = None,
    ) -> Any:
        """:meth:`ainvoke` with ``params`` as one value (array or object): named
        params may have any name, ``timeout`` included. Same errors."""
        routes = await self._routes([socket_id])
        if not routes:
            raise SocketNotFound(socket_id, self.handler_name)
        (node_id,) = routes
        wait = get_settings().invoke_timeout if timeout is None else timeout
        value = dict(params) if isinstance(params, Mapping) else tuple(params)
        return await get_node().invoke(self.handler_name, node_id, socket_id, method, value, wait)

    async def ainvoke_user(
        self, user: Any, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Call a client method on every open socket of a user, concurrently.

        Returns ``{socket id: result}``; for a socket that failed, the value
        is the exception instance (:class:`InvokeTimeout`,
        :class:`RemoteError`, :class:`ConnectionClosed`, ...) instead of a
        result: nothing is raised for one socket's failure. Sockets that
        closed before the call are left out; ``{}`` for a user who is not
        connected. ``timeout`` applies to each socket, all waiting at once.
        """
        params = params_of(args, kwargs)
        wait = get_settings().invoke_timeout if timeout is None else timeout
        node = get_node()
        targets = [
            (node_id, sid)
            for node_id, sids in (await self._routes(await self.auser_sockets(user))).items()
            for sid in sids
        ]

        async def one(node_id: str, sid: str) -> Any:
            try:
                return await node.invoke(self.handler_name, node_id, sid, method, params, wait)
            except Exception as exc:
                return exc

        results = await asyncio.gather(*(one(node_id, sid) for node_id, sid in targets))
        return {sid: result for (_, sid), result in zip(targets, results, strict=True)}

    # -- topics (wsmanager.topics, docs/topics.md) ------------------------------------------
    async def apublish(self, topic: str, event: str, data: Any = None) -> int:
        """Publish to ``topic``: keep it in the topic's history, then send ``rpc.publication``
        to every subscriber, in every process; returns its offset.

        Cost: one history append (one Redis script), then the group fan-out of
        ``notify_group``: one read of the nodes that hold subscribers and one
        channel-layer message per other such process, whatever the number of
        subscribers. Offsets grow by one per publication of a topic; two
        publishers of one topic are ordered by their appends. Raises ValueError
        for a name no topic pattern of the handler matches (where this process
        knows the handler's class), TypeError for data that is not JSON.
        """
        publication = await self._append(topic, event, data)
        text = publication.frame()
        group = topics.group_of(publication.topic)
        kept = await recovery.keep(self.handler_name, "group", (group,), text)
        await self._deliver_group(group, frame(kept), kept is not text)
        return publication.offset

    async def _append(self, topic: str, event: str, data: Any) -> topics.Publication:
        name, data_json = self._checked(topic, event, data)
        size, ttl = topic_store.bounds(topic_store.pattern_of(self.handler_name, name))
        return await topic_store.get_history().append(
            self.handler_name, name, event, data_json, size=size, ttl=ttl
        )

    def _checked(self, topic: str, event: str, data: Any) -> tuple[str, str]:
        name = topic_store.check_name(topic)
        if not isinstance(event, str) or not event:
            raise ValueError(f"an event is a non-empty string, not {event!r}")
        try:
            return name, protocol.dumps(data)
        except protocol.EncodeError as exc:
            raise TypeError(f"publication data is not JSON: {exc}") from exc

    def publish_on_commit(
        self, topic: str, event: str, data: Any = None, *, using: str | None = None
    ) -> None:
        """Publish once the current transaction of database ``using`` commits (at once
        outside a transaction); nothing goes out if it rolls back.

        Name, event and data are checked now (ValueError, TypeError). In one
        transaction, publications go out in the order they were asked for, after
        the commit, from the committing thread (sync code). A publication that
        fails then (the registry is unreachable) cannot undo the commit: it is
        logged and counted (``publish_failed``), and the transaction's caller
        is not told.
        """
        self._checked(topic, event, data)

        def publish() -> None:
            try:
                self.publish(topic, event, data)
            except Exception:
                bump(Count.PUBLISH_FAILED)
                logger.exception("publication to %r of %s after commit failed", topic, self.handler_name)

        transaction.on_commit(publish, using=using)

    async def ahistory(
        self, topic: str, since: topics.Position | Mapping[str, Any] | None = None, limit: int = 100
    ) -> topics.Read:
        """The topic's kept publications and its position (:class:`~wsmanager.topics.Read`).

        With ``since`` (a position, or ``{"offset", "epoch"}``): those after it,
        oldest first, at most ``limit``, and ``recovered`` False when some were
        lost (then none). Without: the latest ``limit`` (0: just the position).
        """
        name = topic_store.check_name(topic)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit is an integer, 0 or more, not {limit!r}")
        if isinstance(since, Mapping):
            since = topics.Position(int(since["offset"]), str(since["epoch"]))
        _size, ttl = topic_store.bounds(topic_store.pattern_of(self.handler_name, name))
        return await topic_store.get_history().read(self.handler_name, name, since, limit=limit, ttl=ttl)

    # -- sync twins ----------------------------------------------------------------------
    get = _sync_twin(aget)
    get_many = _sync_twin(aget_many)
    exists = _sync_twin(aexists)
    ids = _sync_twin(aids)
    count = _sync_twin(acount)
    all = _sync_twin(aall)
    groups = _sync_twin(agroups)
    group_members = _sync_twin(agroup_members)
    group_size = _sync_twin(agroup_size)
    groups_of = _sync_twin(agroups_of)
    user_sockets = _sync_twin(auser_sockets)
    is_online = _sync_twin(ais_online)
    presence = _sync_twin(apresence)
    member_count = _sync_twin(amember_count)
    add_to_group = _sync_twin(aadd_to_group)
    remove_from_group = _sync_twin(aremove_from_group)
    update_meta = _sync_twin(aupdate_meta)
    send = _sync_twin(asend)
    send_many = _sync_twin(asend_many)
    send_group = _sync_twin(asend_group)
    send_all = _sync_twin(asend_all)
    send_user = _sync_twin(asend_user)
    disconnect = _sync_twin(adisconnect)
    notify = _sync_twin(anotify)
    notify_many = _sync_twin(anotify_many)
    notify_group = _sync_twin(anotify_group)
    notify_all = _sync_twin(anotify_all)
    notify_user = _sync_twin(anotify_user)
    invoke = _sync_twin(ainvoke)
    invoke_params = _sync_twin(ainvoke_params)
    invoke_user = _sync_twin(ainvoke_user)
    publish = _sync_twin(apublish)
    history = _sync_twin(ahistory)


_managers: dict[str, Manager] = {}


def get_manager(handler: str | type[Any]) -> Manager:
    """The manager of a handler, by class or by its ``handler_name``.

    Works without importing the handler class (e.g. in a management command
    of another process): the name is all the registry needs.
    """
    name = handler if isinstance(handler, str) else handler.handler_name
    manager = _managers.get(name)
    if manager is None:
        manager = _managers[name] = Manager(name)
    return manager
