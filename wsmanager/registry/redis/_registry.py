"""The Redis registry: every server process shares one view of every socket.

Guarantees:

* Every write is one Lua script, so it is atomic with respect to every other
  call of every process sharing the Redis database and the ``prefix``.
  ``update_meta``, ``group_add`` and ``group_discard`` read the entry, then
  write it back only if it did not change in between (compare-and-set,
  retried on conflict), so a concurrent ``remove`` never leaves a ghost
  group member behind.
* A process that dies without calling :meth:`RedisRegistry.remove_node`
  (SIGKILL, power loss) stops refreshing its liveness key; once the key
  expires (``node_ttl`` after the last :meth:`~RedisRegistry.node_alive`) the
  next call of any process forgets that node's sockets. Each process calls
  :meth:`~RedisRegistry.node_alive` every half ``HEARTBEAT_INTERVAL``; with
  the default ``node_ttl`` of 1.5 intervals a crashed process's sockets
  disappear at most two heartbeat intervals after the crash (1.5 for the key
  to expire, 0.5 until a survivor's next sweep), and a live process is only
  taken for dead when it could not refresh its key for 1.5 intervals.
* Presence counters change in the same script as the group memberships
  (``join``/``leave`` in the scripts' shared library), so each member's
  joining or leaving a group is reported to exactly one caller. Departures
  of reaped and removed nodes are queued on ``{P}:departed`` by the reaping
  script itself, whichever process runs it; :meth:`~RedisRegistry.take_departures`
  pops them (LPOP), so each is taken once. The queue expires when no
  process takes from it for ``max(60 s, 10 * node_ttl)``.
* Redis errors never escape: they are raised as :class:`RegistryUnavailable`.
  An outage costs at most ``socket_connect_timeout`` (or ``socket_timeout``
  for a server that stops answering) per call, and the first call after Redis
  is back succeeds; nothing has to be rebuilt.

Non-guarantees: a call interrupted by a lost connection may or may not have
taken effect. A process that is paused (SIGSTOP, a long GC pause) for longer
than ``node_ttl`` is treated as dead and its sockets are forgotten even
though they are still open. One connection pool exists per event loop.

Where Redis runs: a single primary (``redis://``), a primary found through
Sentinel (``redis+sentinel://``), or a Redis Cluster (``redis+cluster://``).
On a cluster the registry's keys are all in the slot of its keyspace (the
prefix in braces), so the registry is served by one shard at a time; the
journals and topic histories spread over the others.

The key layout is drawn in :mod:`wsmanager.registry.redis._scripts`, which
builds the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, cast
from urllib.parse import quote

try:
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "wsmanager.registry.redis.RedisRegistry needs the 'redis' package: pip install 'wsmanager[redis]'"
    ) from exc

from ..._conf import get_settings
from ...exceptions import ConfigurationError, RegistryUnavailable, SocketNotFound
from ...observe import _hub as observe
from .._base import ConnectionInfo, Departure, RegistryBackend
from . import _scripts as scripts
from ._activity import LastActivity
from ._common import (
    Bound,
    Client,
    Outcome,
    bound_client,
    departures,
    dumps_info,
    glob_escape,
    loads_info,
    make_client,
    pool_options,
    redact,
)
from ._recovery import RedisRecovery

__all__ = ["RedisRegistry"]

logger = logging.getLogger(__name__)


class RedisRegistry(RedisRecovery, LastActivity, RegistryBackend):
    """A registry shared by every process through one Redis database.

    Options (``WSMANAGER["REGISTRY"]["OPTIONS"]``): ``url`` of the database
    (or ``redis+sentinel://host:port,host:port/<service>/<db>``: the primary the
    sentinels name, looked up again on every reconnect; or
    ``redis+cluster://host:port,host:port``: a Redis Cluster, see docs/scaling.md);
    ``prefix`` of every key (processes sharing a prefix share the registry);
    ``node_ttl``, seconds a node's liveness key lives (default: 1.5
    ``HEARTBEAT_INTERVAL``); ``max_connections`` per event loop (a burst beyond
    it waits up to ``pool_timeout`` seconds for a free connection);
    ``socket_connect_timeout`` and ``socket_timeout`` in seconds.
    """

    #: Most sockets one sweep script forgets; larger dead nodes take several scripts.
    sweep_batch: int = 1000

    shared = True

    def __init__(
        self,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "wsm",
        node_ttl: float | None = None,
        max_connections: int = 1000,
        pool_timeout: float = 10.0,
        socket_connect_timeout: float = 2.0,
        socket_timeout: float = 5.0,
    ) -> None:
        if node_ttl is None:
            node_ttl = 1.5 * get_settings().heartbeat_interval
        if node_ttl <= 0:
            raise ConfigurationError(f"RedisRegistry node_ttl must be positive, not {node_ttl!r}")
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"RedisRegistry prefix {prefix!r} must be non-empty, without braces (the registry "
                "puts it in braces itself: the Redis Cluster hash tag of its keys)"
            )
        if max_connections < 1:
            raise ConfigurationError(
                f"RedisRegistry max_connections must be at least 1, not {max_connections!r}"
            )
        self.url = url
        self.prefix = prefix
        #: The registry's own keys start with the prefix in braces: a Redis Cluster
        #: hash tag, so that every key one script touches is in one slot.
        self.keyspace = "{" + prefix + "}"
        self.node_ttl = float(node_ttl)
        self._pool_options = pool_options(
            max_connections, pool_timeout, socket_connect_timeout, socket_timeout
        )
        try:  # report a malformed URL now rather than on the first call
            make_client(url, self._pool_options)
        except ValueError as exc:
            raise ConfigurationError(f"RedisRegistry url {redact(url)!r} is invalid: {exc}") from exc
        self._bounds: dict[asyncio.AbstractEventLoop, Bound] = {}
        self._sweep_due = 0.0  # time.monotonic() when a node may next expire
        self._heartbeats: set[str] = set()
        #: (handler, id) -> the stored JSON of an entry this process last wrote
        #: (its own sockets): the first compare-and-set attempt compares
        #: against it instead of reading the entry first.
        self._written: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"RedisRegistry(url={redact(self.url)!r}, prefix={self.prefix!r})"

    # -- keys ----------------------------------------------------------------
    def _key(self, kind: str, handler: str, rest: str | None = None) -> str:
        key = f"{self.keyspace}:{kind}:{quote(handler, safe='')}"
        return key if rest is None else f"{key}:{rest}"

    def _journal_key(self, kind: str, handler: str) -> str:
        """A handler's journal key: outside the registry's slot, hash-tagged by handler."""
        return f"{self.prefix}:{kind}:{{{quote(handler, safe='')}}}"

    # -- connection ------------------------------------------------------------
    def _bound(self) -> Bound:
        return bound_client(self._bounds, self.url, self._pool_options)

    @contextlib.asynccontextmanager
    async def _redis(self, action: str, sweep: bool = True) -> AsyncIterator[Client]:
        """The loop's client, after a sweep if a node may have expired; errors translated."""
        try:
            bound = self._bound()
            if sweep and time.monotonic() >= self._sweep_due:
                async with bound.sweep_lock:
                    if time.monotonic() >= self._sweep_due:
                        await self._sweep(bound.client, "")
            yield bound.client
        except (RedisError, OSError) as exc:
            if observe.hub is not None:
                observe.hub.registry_error(action)
            raise RegistryUnavailable(
                f"Redis registry at {redact(self.url)} unavailable ({action}): {exc}"
            ) from exc

    async def _sweep(self, client: Client, node: str) -> list[Departure]:
        """Forget the sockets of ``node``, or of every expired node if ``node`` is "".

        The script also queues the departures that left a group on ``{P}:departed``.
        """
        gone: list[Departure] = []
        more = True
        departed_ttl_ms = max(60_000, round(self.node_ttl * 10_000))
        while more:
            started = time.monotonic()
            batch = max(1, self.sweep_batch)
            reply = await scripts.SWEEP(client, self.keyspace, batch, node, departed_ttl_ms)
            more = bool(reply[0])
            gone.extend(departures(reply[2:]))
            if not node:
                ttl = reply[1] / 1000 if reply[1] >= 0 else self.node_ttl
                self._sweep_due = started + min(ttl, self.node_ttl)
        return gone

    # -- sockets -------------------------------------------------------------
    async def add(self, info: ConnectionInfo) -> frozenset[str]:
        """Record the socket (replacing an entry with the same id) and register its node.

        The node's liveness key is created with ``node_ttl`` if it does not
        exist, so a node that never calls :meth:`node_alive` is reaped.
        Returns the groups its member joined.
        """
        stored = dumps_info(info)
        async with self._redis("add") as r:
            joined = await scripts.ADD(
                r,
                self.keyspace,
                quote(info.handler, safe=""),
                info.id,
                stored,
                info.node,
                "0" if info.user_id is None else "1",
                info.user_id or "",
                max(1, round(self.node_ttl * 1000)),
                *sorted(info.groups),
            )
        self._written[(info.handler, info.id)] = stored
        return frozenset(str(g) for g in joined)

    async def remove(
        self, handler: str, socket_id: str, node: str | None = None, key: str | None = None
    ) -> Departure | None:
        self._written.pop((handler, socket_id), None)
        async with self._redis("remove") as r:
            reply = await scripts.REMOVE(
                r, self.keyspace, quote(handler, safe=""), socket_id, node or "", key or ""
            )
        if reply is None:
            return None
        return Departure.of(loads_info(str(reply[0])), (str(g) for g in reply[1:]))

    async def get(self, handler: str, socket_id: str) -> ConnectionInfo | None:
        async with self._redis("get") as r:
            raw = await r.hget(self._key("sockets", handler), socket_id)
        return None if raw is None else loads_info(str(raw))

    async def get_many(self, handler: str, socket_ids: Iterable[str]) -> list[ConnectionInfo]:
        wanted = list(socket_ids)
        if not wanted:
            return []
        async with self._redis("get_many") as r:
            raws = await r.hmget(self._key("sockets", handler), wanted)
        return [loads_info(str(raw)) for raw in raws if raw is not None]

    async def ids(self, handler: str) -> list[str]:
        async with self._redis("ids") as r:
            return cast("list[str]", await r.hkeys(self._key("sockets", handler)))

    async def count(self, handler: str) -> int:
        async with self._redis("count") as r:
            return int(await r.hlen(self._key("sockets", handler)))

    async def update_meta(self, handler: str, socket_id: str, meta: Mapping[str, Any]) -> None:
        await self._replace("update_meta", handler, socket_id, lambda info: info.with_meta(meta))

    async def _replace(
        self,
        op: str,
        handler: str,
        socket_id: str,
        change: Callable[[ConnectionInfo], ConnectionInfo | None],
        group: str = "",
        missing_ok: bool = False,
    ) -> ConnectionInfo | None:
        """Rewrite an entry with :func:`~.redis_scripts.compare_and_set`.

        For an entry this process wrote last (its own sockets), the first
        attempt compares against what it wrote instead of reading it first.
        Returns the new entry if its member joined (``group_add``) or left
        (``group_discard``) the group, else None.
        """
        key = (handler, socket_id)
        async with self._redis(op) as r:
            outcome, new, stored = await scripts.compare_and_set(
                r, self.keyspace, handler, socket_id, change, op, group, self._written.get(key)
            )
        if stored is not None and key in self._written:
            self._written[key] = stored
        if outcome is Outcome.GONE:
            self._written.pop(key, None)
            if not missing_ok:
                raise SocketNotFound(socket_id, handler)
        return new if outcome is Outcome.TRANSITION else None

    # -- groups ------------------------------------------------------------
    async def group_add(self, handler: str, group: str, socket_id: str) -> ConnectionInfo | None:
        def change(info: ConnectionInfo) -> ConnectionInfo | None:
            return None if group in info.groups else info.with_group(group)

        return await self._replace("group_add", handler, socket_id, change, group)

    async def group_discard(self, handler: str, group: str, socket_id: str) -> ConnectionInfo | None:
        def change(info: ConnectionInfo) -> ConnectionInfo | None:
            return info.without_group(group) if group in info.groups else None

        return await self._replace("group_discard", handler, socket_id, change, group, missing_ok=True)

    async def group_members(self, handler: str, group: str, limit: int | None = None) -> list[str]:
        """``SMEMBERS``; with ``limit``, ``SRANDMEMBER key limit`` (at most that many,
        distinct, a random choice when the group has more)."""
        key = self._key("group", handler, group)
        async with self._redis("group_members") as r:
            if limit is None:
                return list(cast("set[str]", await r.smembers(key)))
            if limit <= 0:
                return []
            return list(cast("list[str]", await r.srandmember(key, limit)))

    async def group_size(self, handler: str, group: str) -> int:
        async with self._redis("group_size") as r:
            return int(await r.scard(self._key("group", handler, group)))

    async def member_count(self, handler: str, group: str) -> int:
        async with self._redis("member_count") as r:
            return int(await r.hlen(self._key("presence", handler, group)))

    async def groups(self, handler: str) -> list[str]:
        async with self._redis("groups") as r:
            return list(cast("set[str]", await r.smembers(self._key("groups", handler))))

    # -- users ---------------------------------------------------------------
    async def user_sockets(self, handler: str, user_id: str) -> list[str]:
        async with self._redis("user_sockets") as r:
            return list(cast("set[str]", await r.smembers(self._key("user", handler, user_id))))

    # -- routing -------------------------------------------------------------
    async def nodes_of(self, handler: str, socket_ids: Iterable[str]) -> dict[str, list[str]]:
        """Group socket ids by node with one HMGET; unknown ids are left out."""
        wanted = list(socket_ids)
        if not wanted:
            return {}
        async with self._redis("nodes_of") as r:
            nodes = await r.hmget(self._key("routes", handler), wanted)
        routes: dict[str, list[str]] = {}
        for sid, node in zip(wanted, nodes, strict=True):
            if node is not None:
                routes.setdefault(str(node), []).append(sid)
        return routes

    async def group_nodes(self, handler: str, group: str, exclude: Iterable[str] = ()) -> dict[str, int]:
        """``HGETALL`` of the group's per-node counts (``P:gnodes:H:<group>``, kept by
        the membership scripts); with ``exclude``, one script that also takes out the
        excluded members (cost: the nodes, plus one lookup per excluded id)."""
        skip = sorted(set(exclude))
        async with self._redis("group_nodes") as r:
            if not skip:
                raw = await r.hgetall(self._key("gnodes", handler, group))
                return {str(node): int(n) for node, n in raw.items() if int(n) > 0}
            flat = await scripts.GROUP_NODES(r, self.keyspace, quote(handler, safe=""), group, *skip)
        return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    # -- processes -----------------------------------------------------------
    async def node_alive(self, node: str) -> None:
        """Refresh ``node``'s liveness key for ``node_ttl``, then reap expired nodes.

        Logs a warning when the node's own key had already expired: other
        processes may have forgotten its sockets meanwhile.
        """
        ttl_ms = max(1, round(self.node_ttl * 1000))
        async with self._redis("node_alive", sweep=False) as r:
            existed = await scripts.ALIVE(r, self.keyspace, node, ttl_ms)
            if not existed and node in self._heartbeats:
                logger.warning(
                    "the liveness key of node %s was missing (a heartbeat later than "
                    "node_ttl=%gs, or Redis lost its data): other processes may have "
                    "forgotten its sockets",
                    node,
                    self.node_ttl,
                )
            self._heartbeats.add(node)
            async with self._bound().sweep_lock:
                await self._sweep(r, "")

    async def remove_node(self, node: str) -> list[Departure]:
        """Delete ``node``'s liveness key and forget (or park) its sockets; their departures
        (those that left a group are also queued for :meth:`take_departures`)."""
        self._heartbeats.discard(node)
        async with self._redis("remove_node", sweep=False) as r:
            await r.delete(f"{self.keyspace}:stats:{node}")
            return await self._sweep(r, node)

    async def put_node_stats(self, node: str, stats: Mapping[str, int]) -> None:
        """Replace ``node``'s published counters (one transaction); they expire after ``node_ttl``."""
        key = f"{self.keyspace}:stats:{node}"
        async with self._redis("put_node_stats", sweep=False) as r, r.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if stats:
                pipe.hset(key, mapping={name: int(value) for name, value in stats.items()})
                pipe.pexpire(key, max(1, round(self.node_ttl * 1000)))
            await pipe.execute()

    async def node_stats(self) -> dict[str, dict[str, int]]:
        """The counters of every node whose last publication has not expired."""
        async with self._redis("node_stats") as r:
            nodes = sorted(str(node) for node in await r.smembers(f"{self.keyspace}:nodes"))
            async with r.pipeline(transaction=False) as pipe:
                for node in nodes:
                    pipe.hgetall(f"{self.keyspace}:stats:{node}")
                replies = await pipe.execute()
        return {
            node: {str(name): int(value) for name, value in reply.items()}
            for node, reply in zip(nodes, replies, strict=True)
            if reply
        }

    async def take_departures(self, limit: int = 1000) -> list[Departure]:
        """Pop up to ``limit`` queued departures (one LPOP: each goes to one caller)."""
        async with self._redis("take_departures") as r:
            items = await r.lpop(f"{self.keyspace}:departed", max(1, limit))
        taken: list[Departure] = []
        for item in cast("list[str] | None", items) or []:
            raw, *left = json.loads(item)
            taken.append(Departure.of(loads_info(raw), left))
        return taken

    async def close(self) -> None:
        """Disconnect this event loop's pool; a later call opens a new one."""
        bound = self._bounds.pop(asyncio.get_running_loop(), None)
        if bound is not None:
            with contextlib.suppress(RedisError, OSError):
                await bound.aclose()

    async def clear(self) -> None:
        """Delete every key under ``prefix`` (SCAN, in batches). Tests only."""
        async with self._redis("clear", sweep=False) as r:
            batch: list[str] = []
            for pattern in (glob_escape(self.keyspace), glob_escape(self.prefix)):
                async for key in r.scan_iter(match=pattern + ":*", count=1000):
                    batch.append(str(key))
                    if len(batch) >= 500:
                        await r.unlink(*batch)
                        batch.clear()
            if batch:
                await r.unlink(*batch)
        self._sweep_due = 0.0
        self._heartbeats.clear()
        self._written.clear()
