"""A process's upkeep with the registry, done on every heartbeat of its node.

Twice per ``HEARTBEAT_INTERVAL`` the node's :class:`Upkeep`:

* refreshes the node's liveness in the registry (``node_alive``), which also
  lets a shared registry forget the sockets of processes that stopped
  beating (see :mod:`wsmanager.registry.redis._registry`);
* publishes the process's counters (:func:`wsmanager.observe._counters.stats`) and open socket count, so
  that ``manage.py wsmanager stats`` in any process shows every live node;
* publishes the last activity of each local socket (:meth:`Upkeep.activity`:
  the time of its last frame in or out, which the handler's intake and
  writer keep in memory, one attribute per frame) with ``put_node_activity``, so
  that the admin page shows it, to one beat's precision;
* takes the registry's queued departures (sockets of dead or stopped
  processes) and announces them to the handlers' ``on_presence`` hooks (see
  :mod:`wsmanager._presence`), in a task of its own so that a long
  announcement never delays the heartbeat;
* retries the registry removals that failed while the registry was down;
* with a shared registry, re-adds this process's open sockets that the
  registry lost (a Redis restart, or a pause longer than ``node_ttl`` that
  got the process taken for dead).

A failing step is logged and retried on the next beat; the heartbeat itself
never stops until :meth:`Upkeep.stop`.

It sees its node through a narrow interface, :class:`Host`: the node's id
and the sockets it holds. It imports nothing from :mod:`wsmanager.node._hub`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from .. import _presence as presence
from .._aio import cancel_requested
from ..connection._activity import Activity
from ..exceptions import RegistryUnavailable
from ..observe import _counters as counters
from ..observe import _hub as observe
from ..registry import PARKED, ConnectionInfo, RegistryBackend, get_registry

__all__ = ["Held", "Host", "Upkeep"]

logger = logging.getLogger(__name__)

_sleep = asyncio.sleep  # the beat's pause (tests count it instead of waiting)


class Held(Protocol):
    """What the upkeep reads of a socket its node holds."""

    id: str
    #: The socket's registry entry as this process last wrote it.
    info: ConnectionInfo
    #: Its last frame in or out.
    activity: Activity

    @property
    def settled(self) -> bool:
        """True once the handshake is over (registered, ``on_connect`` done)."""


class Host(Protocol):
    """What the upkeep needs of its node."""

    id: str

    def held(self) -> Sequence[Held]:
        """The sockets open in this process now."""

    def holds(self, sock: Held) -> bool:
        """Whether ``sock`` is still open in this process."""

    def reindex(self, sock: Held) -> None:
        """``sock``'s ``info`` changed: index it under its groups again."""


class Upkeep:
    """The heartbeat of one node and what it does on each beat."""

    def __init__(self, host: Host) -> None:
        self.host = host
        #: (handler, socket id) whose registry removal failed; retried on each beat.
        self.orphans: list[tuple[str, str]] = []
        self._beat: asyncio.Task[None] | None = None
        self.announcing: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._beat is not None

    def start(self, interval: float) -> None:
        """Start beating in the running loop (once; again after :meth:`cancel`)."""
        if self._beat is None:
            self._beat = asyncio.get_running_loop().create_task(self.heartbeat_loop(interval))

    def cancel(self) -> list[asyncio.Task[None]]:
        """Cancel the heartbeat and any announcement; returns the tasks (maybe not done yet)."""
        tasks = [task for task in (self._beat, self.announcing) if task is not None]
        for task in tasks:
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                task.cancel()
        self._beat = self.announcing = None
        return tasks

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel and wait (up to ``timeout``) for the tasks of this loop to end,
        so that no late beat marks the node alive again."""
        loop = asyncio.get_running_loop()
        tasks = [task for task in self.cancel() if task.get_loop() is loop]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def remember_orphan(self, handler: str, socket_id: str) -> None:
        """A registry removal failed (store down): retried on each beat."""
        self.orphans.append((handler, socket_id))

    def published_stats(self) -> dict[str, int]:
        """The process's counters plus ``sockets``, its open sockets, as each beat publishes them."""
        return {**counters.stats(), "sockets": len(self.host.held())}

    def activity(self) -> dict[str, float]:
        """Socket id -> Unix time of its last frame in or out, for the local sockets that had one.

        Read from each socket's :class:`~wsmanager.connection._activity.Activity`, which its
        intake and writer set on each frame in and out.
        """
        found: dict[str, float] = {}
        for sock in self.host.held():
            last = sock.activity.last
            if last:
                found[sock.id] = last
        return found

    async def heartbeat_loop(self, interval: float) -> None:
        """Beat every ``interval / 2`` seconds until cancelled; never raises otherwise."""
        registry = get_registry()
        node_id = self.host.id
        while not cancel_requested():
            try:
                if observe.hub is not None:  # first: whether or not the registry answers
                    observe.hub.heartbeat()
                await registry.node_alive(node_id)
                if cancel_requested():  # lost in node_alive: start nothing more
                    break
                await registry.put_node_stats(node_id, self.published_stats())
                if expired := await registry.expire_parked():
                    counters.bump(counters.Count.PARKED_EXPIRED, expired)
                await registry.put_node_activity(node_id, self.activity())
                if self.announcing is None or self.announcing.done():
                    self.announcing = asyncio.get_running_loop().create_task(
                        self.announce_departures(registry)
                    )
                await self._retry_orphans()
                if registry.shared:
                    await self._reconcile(registry)
            except asyncio.CancelledError:
                raise
            except RegistryUnavailable as exc:
                logger.warning("heartbeat of node %s failed: %s", node_id, exc)
            except Exception:
                logger.exception("heartbeat of node %s failed", node_id)
            if cancel_requested():
                break
            # Twice per interval: with node_ttl = 1.5 intervals, a crashed
            # node's sockets are swept within two intervals of the crash.
            await _sleep(interval / 2)

    async def announce_departures(self, registry: RegistryBackend, batch: int = 1000) -> None:
        """Take the registry's queued departures and announce them, until none is left."""
        try:
            while departures := await registry.take_departures(batch):
                await presence.announce_departures(departures)
                if len(departures) < batch:
                    break
        except RegistryUnavailable as exc:
            logger.warning("node %s cannot take departures: %s", self.host.id, exc)
        except Exception:
            logger.exception("node %s failed to announce departures", self.host.id)

    async def _reconcile(self, registry: RegistryBackend) -> None:
        """Re-add local sockets the shared registry lost (restart, wrong reaping), and
        claim back those it parked although they are open here (taken for dead)."""
        by_handler: dict[str, list[Held]] = {}
        for sock in self.host.held():
            by_handler.setdefault(sock.info.handler, []).append(sock)
        for handler, socks in by_handler.items():
            routes = await registry.nodes_of(handler, [s.id for s in socks])
            present = set(routes.get(self.host.id, ()))
            parked = set(routes.get(PARKED, ()))
            # Routed to another node: the session resumed on another connection, which
            # owns the entry now (this one is closed by a takeover message).
            present.update(sid for node, ids in routes.items() if node != self.host.id for sid in ids)
            for sock in socks:
                # A socket still in its handshake may be registering right now:
                # re-adding its entry could overwrite groups it just joined.
                if not sock.settled or not self.host.holds(sock):
                    continue
                if sock.id in parked:
                    await self._claim_back(registry, sock)
                    continue
                if sock.id in present:
                    continue
                await presence.restore(sock.info)
                if not self.host.holds(sock):  # closed meanwhile
                    await presence.release(handler, sock.id, self.host.id)
                    continue
                counters.bump(counters.Count.RESTORED)
                logger.warning("node %s: registry had lost socket %s; re-added", self.host.id, sock.id)

    async def _claim_back(self, registry: RegistryBackend, sock: Held) -> None:
        """A socket open here was parked (this node was taken for dead): route it here again."""
        who = (self.host.id, sock.id)
        current = await registry.get(sock.info.handler, sock.id)
        if current is not None and current.resume_key == sock.info.resume_key:
            claim = await registry.claim(current, current.with_changes(node=self.host.id))
            if claim.outcome == "ok":
                sock.info = current.with_changes(node=self.host.id)
                self.host.reindex(sock)  # its groups as the registry has them
                counters.bump(counters.Count.RESTORED)
                logger.warning("node %s: socket %s was parked while open here; claimed back", *who)

    async def _retry_orphans(self) -> None:
        while self.orphans:
            handler, sid = self.orphans[-1]
            await presence.release(handler, sid, self.host.id)
            self.orphans.pop()
