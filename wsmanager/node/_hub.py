"""The process-local hub ("node"): local sockets, and delivery to other processes.

Each server process has one :class:`Node`. It knows the sockets open in this
process and owns a channel-layer channel (its id) on which other processes
send it frames, close requests and invocations for those sockets.

Delivery rules:

* A frame for a local socket is handed to that socket directly: no channel
  layer hop, no copy; a broadcast is encoded once and the same message is
  written to every local target.
* Frames for sockets of other processes cost **one channel-layer message per
  process**, not per socket; the receiving node fans out locally.
* A group broadcast carries no member list: each node keeps the index of
  its own sockets per group (:meth:`Node.group_here`, derived from each local
  socket's ``info.groups``, which the process keeps equal to the registry:
  its own writes, and those of other processes told by a ``wsmanager.regroup``
  message), and the sender asks the registry only which nodes hold members
  (:meth:`~wsmanager.registry.RegistryBackend.group_nodes`).
* Per-socket FIFO: frames from one sender to one socket arrive in the order
  they were sent, whether local or remote (the channel layer keeps order per
  channel, the socket's outgoing queue keeps order locally).
* At most once: a frame for a socket that closed meanwhile is dropped and
  counted (``dropped_closed``, ``dropped_unknown``); no retry, no
  acknowledgement (connection recovery keeps notifications, :mod:`wsmanager._recovery`).
* Handing a frame to a local socket never waits for its transport (its
  :class:`~wsmanager.connection._outbox.Outbox`): a client that stops reading cannot
  stall a broadcast. The heartbeat is in :mod:`wsmanager.node._heartbeat`.

The node also counts, per handler and client address, what that address
holds in this process (``max_connections_per_address``): every socket
object from the moment it is admitted (:meth:`Node.reserve`) to its end,
whatever id it holds meanwhile, so that two connections of one resumed
session never share a count or lose one; and the sockets this process
parked (connection recovery) until they resume, are released, or their
window ends.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from channels.layers import get_channel_layer

from .. import _state
from .._aio import cancel_requested
from .._conf import get_settings
from ..connection._outbox import Message
from ..exceptions import DeliveryError, InvokeError, SocketNotFound, SocketParked, WsManagerError
from ..observe._counters import Count, bump
from ..registry import PARKED, get_registry
from . import _relay as relay
from ._heartbeat import Held, Upkeep
from ._link import Link
from ._local import LocalSocket

__all__ = ["LocalSocket", "Node", "get_node", "on_drain_request", "reset_node"]

logger = logging.getLogger(__name__)

#: A handler name and a client address (None: the server gave none).
Origin = tuple[str, str | None]


class Node:
    """This process's hub. Get it with :func:`get_node`."""

    def __init__(self) -> None:
        self.id = ""
        self.sockets: dict[str, LocalSocket] = {}
        self._addresses: Counter[Origin] = Counter()
        # Each socket counted in _addresses, by object (id(); kept alive while counted).
        self._counted: dict[int, tuple[LocalSocket, Origin]] = {}
        self._parked: dict[Origin, dict[str, tuple[float, str]]] = {}  # id -> (until, key), oldest first
        self._pruned = 0.0
        # The local index: (handler, group) -> ids of the sockets here in it, and
        # id -> (handler, groups) it was indexed under (see reindex()).
        self._members: dict[tuple[str, str], set[str]] = {}
        self._indexed: dict[str, tuple[str, frozenset[str], int]] = {}  # ... and when (a stamp)
        self._stamp = 0
        self._resynced: dict[tuple[str, str], float] = {}  # (handler, group) -> monotonic time
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Done once the node's id is known in ``_loop`` (a layer's new_channel may
        #: await the network: callers meanwhile wait for it, never take the old id).
        self._named: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._calls = relay.Calls()
        self.upkeep = Upkeep(self)
        self._link = Link(None)
        self._exit_hook = False

    # -- life cycle ------------------------------------------------------------
    async def start(self) -> str:
        """Start the node in the running loop once; returns its id.

        A node started in an event loop that has since been replaced (test
        suites run a loop per test) starts afresh with a new id. Callers that
        come while the layer names the channel (``new_channel`` may wait for
        Redis, as the Redis Cluster layer's subscription does) wait for it.
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            named = self._named
            if named is not None and not named.done():
                try:
                    await asyncio.shield(named)
                except asyncio.CancelledError:
                    if named.cancelled() and not cancel_requested():
                        return await self.start()  # the first caller was cancelled, not this one
                    raise
            return self.id
        self.cancel()
        self.sockets.clear()
        self._addresses.clear()
        self._counted.clear()
        self._parked.clear()
        self._members.clear()
        self._indexed.clear()
        self._resynced.clear()
        self._calls.clear()
        self._loop = loop
        named = self._named = loop.create_future()
        conf = get_settings()
        layer = get_channel_layer(conf.channel_layer) if conf.channel_layer else None
        self._link = Link(layer)
        try:
            if layer is not None:
                self.id = await layer.new_channel("wsmanager.node")
            else:
                self.id = f"wsmanager.node.local!{secrets.token_hex(8)}"
        except BaseException as exc:
            self._loop = None  # the next start() tries again
            if isinstance(exc, asyncio.CancelledError):
                named.cancel()
            else:
                named.set_exception(exc)
                named.exception()  # retrieved: a caller may not be waiting
            raise
        named.set_result(None)
        if layer is not None and getattr(layer, "deliver", None) is not None:
            # A pub/sub layer keeps nothing for a channel nobody reads, and releases a
            # channel no receive waits on: read it from now on, not from the first socket.
            self._reader = loop.create_task(self._link.read_forever(self.id, self._handle))
        logger.debug("node %s started (%s pid %s)", self.id, socket.gethostname(), os.getpid())
        return self.id

    def _ensure_tasks(self) -> None:
        """Start reading the node's channel and the heartbeat (once per loop).

        Started only when needed (a socket attaches, a remote invoke waits for
        its reply), so that a sender-only process such as a management command
        runs no background task.
        """
        if self.upkeep.running or self._loop is None:
            return
        if not self._exit_hook:
            atexit.register(self._at_exit)
            self._exit_hook = True
        if self._link.layer is not None and self._reader is None:
            self._reader = self._loop.create_task(self._link.read_forever(self.id, self._handle))
        self.upkeep.start(get_settings().heartbeat_interval)

    def cancel(self) -> None:
        """Cancel the background tasks without waiting for them (a replaced loop, tests)."""
        if self._reader is not None:
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                self._reader.cancel()
            self._reader = None
        self.upkeep.cancel()

    async def stop(self) -> None:
        """Stop background tasks, forget this process's sockets in the registry and
        announce their departures. Waits (up to 5 s) for the tasks to end first,
        so that no late heartbeat marks the node alive again after that.
        """
        reader = self._reader
        self._reader = None
        if reader is not None and reader.get_loop() is asyncio.get_running_loop():
            reader.cancel()
            await asyncio.wait([reader], timeout=5.0)
        await self.upkeep.stop()
        if self.id:
            registry = get_registry()
            with contextlib.suppress(WsManagerError):
                await registry.remove_node(self.id)
                await self.upkeep.announce_departures(registry)
        self._loop = None

    def _at_exit(self) -> None:
        """Interpreter exit: forget this process's sockets in the registry.

        Servers cancel their connections on a clean shutdown, and each socket
        then leaves the registry by itself; this catches what such a shutdown
        misses (daphne 4.2 skips that step when any connection has no
        application yet). It runs in a fresh event loop, bounded to 5 s.
        Their departures stay queued in the registry: with a shared one, the
        other processes announce them; with the in-memory one nobody is left.
        """
        if not self.id:
            return
        try:
            asyncio.run(asyncio.wait_for(get_registry().remove_node(self.id), 5.0))
        except Exception as exc:
            logger.warning("node %s: removing its sockets at exit failed: %r", self.id, exc)

    # -- the sockets here, and the count per client address ---------------------
    def attach(self, sock: LocalSocket) -> None:
        """Make ``sock`` the holder of its id here (a socket holding the id, whose
        session ``sock`` resumed, is evicted), counted for its address."""
        self._ensure_tasks()
        holder = self.sockets.get(sock.id)
        if holder is not None and holder is not sock:
            self.detach(sock.id)
        self.sockets[sock.id] = sock
        self.reindex(sock)
        self.reserve(sock, sock.info.handler, sock.info.address)

    def detach(self, socket_id: str, sock: LocalSocket | None = None) -> None:
        """Forget a local socket and stop counting it. With ``sock``: the id is given
        up only if that socket holds it (a resumed session may have taken the id over
        in this process), and ``sock`` stops counting whether it held it or not."""
        if sock is None or self.sockets.get(socket_id) is sock:
            holder = self.sockets.pop(socket_id, None)
            if holder is not None:
                self._unindex(socket_id)
                self.release(holder)
        if sock is not None:
            self.release(sock)

    def vacate(self, socket_id: str, sock: LocalSocket) -> None:
        """``sock`` gives its id up (if it holds it) but goes on counting for its address
        (a resume that failed after its claim: the connection goes on as a fresh socket)."""
        if self.sockets.get(socket_id) is sock:
            del self.sockets[socket_id]
            self._unindex(socket_id)

    # -- the local index of groups ------------------------------------------------
    def reindex(self, sock: Held) -> None:
        """Index ``sock`` under the groups of its ``info`` (if it holds its id here).

        Sockets call it whenever their ``info`` changes (handlers do, from the
        setter of ``info``); :meth:`attach` indexes, :meth:`detach` and
        :meth:`vacate` unindex. Costs nothing when the groups did not change.
        """
        if self.sockets.get(sock.id) is not sock:
            return
        handler, groups = sock.info.handler, sock.info.groups
        was = self._indexed.get(sock.id)
        if was is not None and was[0] == handler and was[1] == groups:
            return
        if was is not None:
            self._unindex(sock.id)
        self._stamp += 1
        self._indexed[sock.id] = (handler, groups, self._stamp)
        for group in groups:
            self._members.setdefault((handler, group), set()).add(sock.id)

    def _unindex(self, socket_id: str) -> None:
        was = self._indexed.pop(socket_id, None)
        if was is None:
            return
        handler, groups, _ = was
        for group in groups:
            key = (handler, group)
            ids = self._members.get(key)
            if ids is not None:
                ids.discard(socket_id)
                if not ids:
                    del self._members[key]

    def group_here(self, handler: str, group: str) -> frozenset[str]:
        """Ids of the sockets open here that are in ``group`` of ``handler`` (a snapshot)."""
        return frozenset(self._members.get((handler, group), ()))

    def reindex_all(self) -> None:
        """Rebuild the whole index from the local sockets' ``info`` (after the heartbeat
        re-read the registry, or in tests)."""
        self._members.clear()
        self._indexed.clear()
        for sock in list(self.sockets.values()):
            self.reindex(sock)

    def reserve(self, sock: LocalSocket, handler: str, address: str | None, cap: int | None = None) -> bool:
        """Count ``sock`` (the object, attached or not yet) among the sockets of ``address``
        in ``handler``, unless that would make more than ``cap`` (False then, nothing
        counted). A socket already counted stays counted where it is (True)."""
        if id(sock) in self._counted:
            return True
        origin = (handler, address)
        if cap is not None and self.sockets_from(handler, address) >= cap:
            return False
        self._counted[id(sock)] = (sock, origin)
        self._addresses[origin] += 1
        return True

    def release(self, sock: LocalSocket) -> None:
        """``sock`` no longer counts for its address (idempotent)."""
        counted = self._counted.pop(id(sock), None)
        if counted is not None:
            origin = counted[1]
            self._addresses[origin] -= 1
            if self._addresses[origin] <= 0:
                del self._addresses[origin]

    def sockets_from(self, handler: str, address: str | None) -> int:
        """What ``address`` holds here in ``handler``: sockets open or being opened, and
        sockets this process parked (until their record is dropped, see :meth:`note_parked`)."""
        origin = (handler, address)
        return self._addresses.get(origin, 0) + len(self._parked.get(origin, ()))

    # -- sockets this process parked (connection recovery) ----------------------
    def note_parked(self, handler: str, address: str | None, socket_id: str, until: float, key: str) -> None:
        """Remember that this process parked a socket of ``address`` until ``until`` (Unix
        time) with resume key ``key``: it counts for its address until it resumes here,
        is released to make room (:meth:`take_oldest_parked`), or its window ends (records
        of windows that ended are dropped at most every 10 s)."""
        now = time.time()
        if now - self._pruned > 10.0:
            self._pruned = now
            for origin, records in list(self._parked.items()):
                self._drop_parked(origin, [sid for sid, (end, _) in records.items() if end < now])
        self._parked.setdefault((handler, address), {})[socket_id] = (until, key)

    def forget_parked(self, handler: str, address: str | None, socket_id: str) -> None:
        """A socket parked here resumed (anywhere), or is gone: it no longer counts here."""
        self._drop_parked((handler, address), [socket_id])

    def is_parked_here(self, handler: str, address: str | None, socket_id: str) -> bool:
        return socket_id in self._parked.get((handler, address), {})

    def take_oldest_parked(
        self, handler: str, address: str | None, spare: str = ""
    ) -> tuple[str, float, str] | None:
        """Stop counting the socket of ``address`` this process parked first (but
        ``spare``): its (id, end of window, key), or None when there is none."""
        records = self._parked.get((handler, address), {})
        for socket_id, (until, key) in records.items():
            if socket_id != spare:
                self._drop_parked((handler, address), [socket_id])
                return socket_id, until, key
        return None

    def _drop_parked(self, origin: Origin, socket_ids: Iterable[str]) -> None:
        records = self._parked.get(origin)
        if records is None:
            return
        for socket_id in socket_ids:
            records.pop(socket_id, None)
        if not records:
            del self._parked[origin]

    def held(self) -> Sequence[LocalSocket]:  # a snapshot of the sockets open here
        return list(self.sockets.values())

    def holds(self, sock: Any) -> bool:  # whether ``sock`` is still open here
        return self.sockets.get(sock.id) is sock

    # -- delivery ----------------------------------------------------------------
    async def deliver(
        self,
        handler: str,
        routes: Mapping[str, Iterable[str]],
        message: Message,
        *,
        kept: bool | None = None,
    ) -> int:
        """Hand ``message`` to every socket in ``routes`` ({node: ids}); how many taken.

        Remote counts are the ids handed to their node's channel; what that
        node then drops (sockets closed meanwhile) is counted there. Parked
        sockets (connection recovery) take a notification that is ``kept``
        (in the journal, replayed on resume). Any other frame is dropped for
        them, counted; a notification that was not kept (``False``) also ends
        their windows (:meth:`~wsmanager.registry.RegistryBackend.spoil`),
        since their resume could no longer be whole. ``None``: a raw frame.
        """
        taken = 0
        failed: list[str] = []
        for node_id, ids in routes.items():
            if node_id == PARKED:
                parked = list(ids)
                bump(Count.KEPT_FOR_PARKED if kept else Count.DROPPED_PARKED, len(parked))
                if kept:
                    taken += len(parked)
                elif kept is False:
                    await get_registry().spoil(handler, parked)
                continue
            if node_id == self.id:
                taken += self._deliver_routed(handler, ids, message)
                continue
            id_list = list(ids)
            envelope = {
                "type": "wsmanager.deliver",
                "handler": handler,
                "ids": id_list,
                **_payload(message),
            }
            if await self._link.send(node_id, envelope):
                taken += len(id_list)
                bump(Count.FORWARDED, len(id_list))
            else:
                failed.append(node_id)
        if failed:
            raise DeliveryError(f"channel layer refused frames for node(s) {', '.join(failed)}")
        return taken

    async def deliver_group(
        self,
        handler: str,
        group: str,
        nodes: Mapping[str, int],
        message: Message,
        exclude: Iterable[str] = (),
        *,
        kept: bool | None = None,
    ) -> int:
        """Hand ``message`` to the members of ``group`` on each node of ``nodes``
        ({node: how many members it holds}, from
        :meth:`~wsmanager.registry.RegistryBackend.group_nodes`), ``exclude`` left out;
        how many taken.

        This node delivers from its own index at once; every other node gets one
        ``wsmanager.deliver_group`` message (no member list) and delivers from its
        index; the counts are what the sender reports as taken, and what a node
        does not find (closed meanwhile) it counts as ``dropped_unknown``. Parked
        members under :data:`PARKED` are counted as in :meth:`deliver`; a
        notification that was not kept (``False``) is the caller's to spoil
        them for (this node does not know their ids).
        """
        skip = sorted(set(exclude))
        taken = 0
        failed: list[str] = []
        for node_id, count in nodes.items():
            if node_id == PARKED:
                bump(Count.KEPT_FOR_PARKED if kept else Count.DROPPED_PARKED, count)
                if kept:
                    taken += count
                continue
            if node_id == self.id:
                taken += self.deliver_group_here(handler, group, message, skip, count)
                continue
            envelope = {
                "type": "wsmanager.deliver_group",
                "handler": handler,
                "group": group,
                "exclude": skip,
                "expect": count,
                **_payload(message),
            }
            if await self._link.send(node_id, envelope):
                taken += count
                bump(Count.FORWARDED, count)
            else:
                failed.append(node_id)
        if failed:
            raise DeliveryError(f"channel layer refused frames for node(s) {', '.join(failed)}")
        return taken

    def deliver_group_here(
        self, handler: str, group: str, message: Message, exclude: Iterable[str] = (), expect: int = 0
    ) -> int:
        """Hand ``message`` to the sockets here in ``group`` (by the index) but ``exclude``,
        never waiting; how many took it. ``expect``: how many the registry counted here;
        those not found are counted as ``dropped_unknown``."""
        targets = self._group_targets(handler, group, exclude)
        if expect > len(targets):
            bump(Count.DROPPED_UNKNOWN, expect - len(targets))
        return self._push(targets, message)

    def _group_targets(self, handler: str, group: str, exclude: Iterable[str]) -> list[LocalSocket]:
        skip = exclude if isinstance(exclude, (set, frozenset)) else frozenset(exclude)
        sockets = self.sockets
        targets = []
        for sid in self.group_here(handler, group):
            sock = sockets.get(sid)
            if sid not in skip and sock is not None and sock.info.handler == handler:
                targets.append(sock)
        return targets

    @staticmethod
    def _push(targets: Iterable[LocalSocket], message: Message) -> int:
        taken = 0
        for sock in targets:
            if sock.writer.push(message):
                taken += 1
        bump(Count.DELIVERED, taken)
        return taken

    async def deliver_group_checked(
        self, handler: str, group: str, message: Message, exclude: Iterable[str], expect: int
    ) -> int:
        """:meth:`deliver_group_here` for a broadcast whose sender counted ``expect`` members
        here: when the index disagrees (a membership written into the registry by
        another way than a manager, or a socket closing meanwhile), the group's
        members here are first re-read from the registry (:meth:`resync_group`, at
        most once a second per group), so the index heals itself."""
        skip = frozenset(exclude)
        targets = self._group_targets(handler, group, skip)
        if len(targets) != expect and await self.resync_group(handler, group):
            targets = self._group_targets(handler, group, skip)
        if expect > len(targets):
            bump(Count.DROPPED_UNKNOWN, expect - len(targets))
        return self._push(targets, message)

    async def resync_group(self, handler: str, group: str) -> bool:
        """Make the local sockets' ``info`` (and the index) agree with the registry on
        ``group``: one read of its members and of their routes (its cost grows with the
        group; a repair, not the path of a broadcast). A socket whose groups changed here
        while the registry was read is left as it is (it is newer than the read), and so is
        one the registry does not hold here (an entry lost with Redis's data: the heartbeat
        re-adds it with the groups it has here, so they must survive the read). At most
        once a second per group: False when skipped, or when the registry cannot be read
        (logged)."""
        now = time.monotonic()
        key = (handler, group)
        if now - self._resynced.get(key, -1e9) < 1.0:
            return False
        if len(self._resynced) > 10_000:
            self._resynced.clear()
        self._resynced[key] = now
        started = self._stamp  # a socket (re)indexed after this is newer than the reads below
        registry = get_registry()
        here = self.group_here(handler, group)
        try:
            members = set(await registry.group_members(handler, group))
            known = set((await registry.nodes_of(handler, members | here)).get(self.id, ()))
        except WsManagerError as exc:
            logger.warning("node %s: re-reading group %r of %s failed: %r", self.id, group, handler, exc)
            return False
        for sid in here | (members & known):
            sock = self.sockets.get(sid)
            indexed = self._indexed.get(sid)
            if sock is None or sock.info.handler != handler or indexed is None or indexed[2] > started:
                continue
            if sid not in known:
                # The registry lost this socket (Redis restarted empty): its groups here are the
                # truth the heartbeat re-adds it with, never taken from an empty read.
                continue
            if sid in members and group not in sock.info.groups:
                sock.info = sock.info.with_group(group)
            elif sid not in members and group in sock.info.groups:
                sock.info = sock.info.without_group(group)
            self.reindex(sock)
        return True

    def split(self, handler: str, ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """``ids`` as (open here for ``handler``, elsewhere): a local socket of another
        handler is not one of ``handler``'s (the registry says where that id is)."""
        here: list[str] = []
        elsewhere: list[str] = []
        sockets = self.sockets
        for sid in ids:
            sock = sockets.get(sid)
            (here if sock is not None and sock.info.handler == handler else elsewhere).append(sid)
        return here, elsewhere

    def deliver_here(self, handler: str, ids: Iterable[str], message: Message) -> tuple[int, list[str]]:
        """Hand ``message`` to each of ``ids`` open here for ``handler`` as it is met
        (never waits; the first is written before the last is looked at); returns
        how many took it and the ids that are not here (the same rule as :meth:`split`)."""
        taken = 0
        elsewhere: list[str] = []
        sockets = self.sockets
        for sid in ids:
            sock = sockets.get(sid)
            if sock is None or sock.info.handler != handler:
                elsewhere.append(sid)
            elif sock.writer.push(message):
                taken += 1
        bump(Count.DELIVERED, taken)
        return taken, elsewhere

    def _deliver_routed(self, handler: str, ids: Iterable[str], message: Message) -> int:
        """Deliver to ids the registry routed here; those closed meanwhile are counted."""
        taken, gone = self.deliver_here(handler, ids, message)
        bump(Count.DROPPED_UNKNOWN, len(gone))
        return taken

    async def take_over(self, node_id: str, socket_id: str, key: str, timeout: float = 1.0) -> bool:
        """A session resumed here: its old connection (key ``key``) on node ``node_id``
        lets go of the id and closes with 4409. Waits up to ``timeout`` for that node to
        say it did (False: it did not answer, e.g. it is dead, or had no such socket)."""
        if node_id == self.id:
            sock = self.sockets.get(socket_id)
            return sock is not None and sock.taken_over(key)
        self._ensure_tasks()
        envelope = {"type": "wsmanager.takeover", "id": socket_id, "key": key, "method": "takeover"}
        envelope["reply_to"] = self.id
        try:
            return bool(await self._calls.call(self._link, node_id, envelope, timeout, margin=0.0))
        except WsManagerError:
            return False

    async def regroup(self, handler: str, node_id: str, socket_id: str, group: str, add: bool) -> bool:
        """Another process changed the groups of a socket of node ``node_id`` in the
        registry: tell that node, so that its socket's ``info`` (and the index) follows.
        Returns once the message is on its way (False: refused, logged and counted).
        A later message from this process to that node arrives after it."""
        if node_id == self.id:
            self._regroup(handler, socket_id, group, add)
            return True
        envelope = {"type": "wsmanager.regroup", "handler": handler, "id": socket_id, "group": group}
        return await self._link.send(node_id, {**envelope, "add": add})

    def _regroup(self, handler: str, socket_id: str, group: str, add: bool) -> None:
        sock = self.sockets.get(socket_id)
        if sock is None or sock.info.handler != handler:
            return
        sock.info = sock.info.with_group(group) if add else sock.info.without_group(group)
        self.reindex(sock)

    async def request_drain(self, node_id: str, period: float | None) -> bool:
        """Ask node ``node_id`` to drain (see :mod:`wsmanager.ops.drain`); False if refused."""
        await self.start()
        return await self._link.send(node_id, {"type": "wsmanager.drain", "period": period})

    async def close_socket(self, handler: str, node_id: str, socket_id: str, code: int, reason: str) -> None:
        """Close a socket of any node from the server side."""
        if node_id == self.id:
            sock = self.sockets.get(socket_id)
            if sock is None:
                raise SocketNotFound(socket_id, handler)
            await sock.close(code, reason)
            return
        envelope = {"type": "wsmanager.close", "id": socket_id, "code": code, "reason": reason}
        if not await self._link.send(node_id, envelope):
            raise DeliveryError(f"channel layer refused a close for node {node_id}")

    async def invoke(
        self,
        handler: str,
        node_id: str,
        socket_id: str,
        method: str,
        params: tuple[Any, ...] | dict[str, Any],
        timeout: float,
    ) -> Any:
        """Invoke a client method on a socket of any node and await the result."""
        if node_id == PARKED:
            raise SocketParked(socket_id, handler)
        if node_id == self.id:
            sock = self.sockets.get(socket_id)
            if sock is None:
                raise SocketNotFound(socket_id, handler)
            if not hasattr(sock, "invoke_params"):
                raise InvokeError(socket_id, method, "the socket's handler does not speak JSON-RPC")
            return await sock.invoke_params(method, params, timeout=timeout)
        self._ensure_tasks()
        envelope = relay.invoke_envelope(handler, socket_id, method, params, timeout, self.id)
        return await self._calls.call(self._link, node_id, envelope, timeout)

    # -- what other nodes send ----------------------------------------------------
    async def _handle(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "wsmanager.deliver":
            frame = {"type": "websocket.send", **_payload(message)}
            self._deliver_routed(message["handler"], message["ids"], frame)
        elif kind == "wsmanager.deliver_group":
            frame = {"type": "websocket.send", **_payload(message)}
            exclude = frozenset(message.get("exclude") or ())
            await self.deliver_group_checked(
                message["handler"], message["group"], frame, exclude, int(message.get("expect", 0))
            )
        elif kind == "wsmanager.regroup":
            self._regroup(message["handler"], message["id"], message["group"], bool(message["add"]))
        elif kind == "wsmanager.close":
            sock = self.sockets.get(message["id"])
            if sock is not None:
                await sock.close(message["code"], message.get("reason") or None)
        elif kind == "wsmanager.takeover":
            sock = self.sockets.get(message["id"])
            done = sock is not None and sock.taken_over(str(message.get("key", "")))
            if "call" in message:
                reply = {"type": "wsmanager.invoke_result", "call": message["call"], "result": done}
                await self._link.send(message["reply_to"], reply)
        elif kind == "wsmanager.invoke":
            sock = self.sockets.get(message["id"])
            asyncio.get_running_loop().create_task(relay.serve(sock, self._link, message))
        elif kind == "wsmanager.drain":
            if _drain_requested is not None:  # None: no drain installed here (logged by drain)
                _drain_requested(message.get("period"))
        elif kind == "wsmanager.invoke_result":
            self._calls.settle(message)
        else:
            logger.warning("node %s got an unknown message type %r", self.id, kind)


def _payload(message: Message) -> Message:
    """The data part of a frame message (``text`` or ``bytes``)."""
    key = "text" if "text" in message else "bytes"
    return {key: message[key]}


_node: Node | None = None
#: What this process does when another asks it to drain (set by wsmanager.ops.drain.install).
_drain_requested: Callable[[float | None], None] | None = None


def on_drain_request(callback: Callable[[float | None], None] | None) -> None:
    """Set what a ``wsmanager.drain`` message from another process runs (period in seconds)."""
    global _drain_requested
    _drain_requested = callback


def get_node() -> Node:
    """This process's node (created on first use; started by the first socket)."""
    global _node
    if _node is None:
        _node = Node()
    return _node


def reset_node() -> None:
    """Forget the node (tests)."""
    global _node
    if _node is not None:
        _node.cancel()
    _node = None


_state.owns(__name__, reset_node)
