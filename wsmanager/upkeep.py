"""A process's upkeep with the registry, done on every heartbeat of its node.

Twice per ``HEARTBEAT_INTERVAL`` the node's :class:`Upkeep`:

* refreshes the node's liveness in the registry (``node_alive``), which also
  lets a shared registry forget the sockets of processes that stopped
  beating (see :mod:`wsmanager.registry.redis`);
* publishes the node's counters (``Node.stats``) and open socket count, so
  that ``manage.py wsmanager stats`` in any process shows every live node;
* takes the registry's queued departures (sockets of dead or stopped
  processes) and announces them to the handlers' ``on_presence`` hooks (see
  :mod:`wsmanager.presence`), in a task of its own so that a long
  announcement never delays the heartbeat;
* retries the registry removals that failed while the registry was down;
* with a shared registry, re-adds this process's open sockets that the
  registry lost (a Redis restart, or a pause longer than ``node_ttl`` that
  got the process taken for dead).

A failing step is logged and retried on the next beat; the heartbeat itself
never stops until its task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .exceptions import RegistryUnavailable
from .presence import announce_arrival, announce_departure, announce_departures
from .registry import RegistryBackend, get_registry

if TYPE_CHECKING:
    from .node import LocalSocket, Node

__all__ = ["Upkeep", "cancel_requested"]

logger = logging.getLogger("wsmanager.node")

_sleep = asyncio.sleep  # the beat's pause (tests count it instead of waiting)


def cancel_requested() -> bool:
    """Whether the running task was cancelled, even if its ``CancelledError`` got lost.

    Python 3.11's ``asyncio.wait_for``, which redis-py wraps around every
    write, returns normally and drops a cancellation that arrives in the
    loop iteration where its inner call completes (CPython gh-86296, fixed
    in 3.12). A background loop that stopped only on the exception would
    then run forever; the task's pending cancel count survives the loss.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Upkeep:
    """The heartbeat of one :class:`~wsmanager.node.Node` and what it does on each beat."""

    def __init__(self, node: Node) -> None:
        self.node = node
        #: (handler, socket id) whose registry removal failed; retried on each beat.
        self.orphans: list[tuple[str, str]] = []
        #: The task announcing queued departures, if one runs.
        self.announcing: asyncio.Task[None] | None = None

    def published_stats(self) -> dict[str, int]:
        """The node's counters plus ``sockets``, its open sockets, as each beat publishes them."""
        return {**self.node.stats, "sockets": len(self.node.sockets)}

    async def heartbeat_loop(self, interval: float) -> None:
        """Beat every ``interval / 2`` seconds until cancelled; never raises otherwise."""
        registry = get_registry()
        while not cancel_requested():
            try:
                await registry.node_alive(self.node.id)
                if cancel_requested():  # lost in node_alive: start nothing more
                    break
                await registry.put_node_stats(self.node.id, self.published_stats())
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
                logger.warning("heartbeat of node %s failed: %s", self.node.id, exc)
            except Exception:
                logger.exception("heartbeat of node %s failed", self.node.id)
            if cancel_requested():
                break
            # Twice per interval: with node_ttl = 1.5 intervals, a crashed
            # node's sockets are swept within two intervals of the crash.
            await _sleep(interval / 2)

    async def announce_departures(self, registry: RegistryBackend, batch: int = 1000) -> None:
        """Take the registry's queued departures and announce them, until none is left."""
        try:
            while departures := await registry.take_departures(batch):
                await announce_departures(departures)
                if len(departures) < batch:
                    break
        except RegistryUnavailable as exc:
            logger.warning("node %s cannot take departures: %s", self.node.id, exc)
        except Exception:
            logger.exception("node %s failed to announce departures", self.node.id)

    async def _reconcile(self, registry: RegistryBackend) -> None:
        """Re-add local sockets the shared registry lost (restart, wrong reaping)."""
        by_handler: dict[str, list[LocalSocket]] = {}
        for sock in list(self.node.sockets.values()):
            by_handler.setdefault(sock.info.handler, []).append(sock)
        for handler, socks in by_handler.items():
            routes = await registry.nodes_of(handler, [s.id for s in socks])
            present = set(routes.get(self.node.id, ()))
            for sock in socks:
                # A socket still in its handshake may be registering right now:
                # re-adding its entry could overwrite groups it just joined.
                if sock.id in present or not sock.settled or self.node.sockets.get(sock.id) is not sock:
                    continue
                # A re-added member is announced again: its loss may have been announced.
                await announce_arrival(handler, sock.info, await registry.add(sock.info))
                if self.node.sockets.get(sock.id) is not sock:  # closed meanwhile
                    await announce_departure(handler, await registry.remove(handler, sock.id))
                    continue
                self.node.stats["restored"] += 1
                logger.warning("node %s: registry had lost socket %s; re-added", self.node.id, sock.id)

    async def _retry_orphans(self) -> None:
        registry = get_registry()
        while self.orphans:
            handler, sid = self.orphans[-1]
            departure = await registry.remove(handler, sid)
            self.orphans.pop()
            await announce_departure(handler, departure)
