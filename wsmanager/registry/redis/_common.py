"""The Redis registry's small parts: entry and departure encoding, the
outcome of a compare-and-set, the connection pool's options and its one
client per event loop (a plain pool, one that finds the primary through
Redis Sentinel for a ``redis+sentinel://`` URL, or a Redis Cluster client for
a ``redis+cluster://`` URL), URL redaction and glob
escaping. No Redis command is sent from here.

Entries are stored as compact JSON with :func:`wsmanager_client.protocol.dumps`,
which writes lone surrogates (a client may send ``"\\udfff"``) as ``\\u``
escapes, so every entry is valid UTF-8 and redis-py can always send it.
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from wsmanager_client.protocol import dumps

from .._base import ConnectionInfo, Departure

__all__ = [
    "CLUSTER_SCHEME",
    "SENTINEL_SCHEME",
    "Bound",
    "Client",
    "ClusterAddress",
    "Outcome",
    "SentinelAddress",
    "bound_client",
    "channel_layer_host",
    "departures",
    "dumps_info",
    "glob_escape",
    "loads_info",
    "make_client",
    "parse_cluster_url",
    "parse_sentinel_url",
    "pool_options",
    "redact",
]


class Outcome(enum.IntEnum):
    """What the compare-and-set script (``REPLACE``) did."""

    GONE = -1  #: the entry does not exist
    CHANGED_MEANWHILE = 0  #: the entry was not the one compared against: retry
    WRITTEN = 1  #: written
    TRANSITION = 2  #: written, and the member joined or left the group
    UNCHANGED = 3  #: nothing to write (not a script reply: decided before it)


#: A client of one Redis (or its primary through Sentinel), or of a Redis Cluster.
Client: TypeAlias = Redis | RedisCluster


@dataclass
class Bound:
    """What belongs to one event loop: the client (and its pool), the sweep lock,
    and with Sentinel the clients of the sentinels that name the primary."""

    client: Client
    sweep_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sentinel: Sentinel | None = None

    async def aclose(self) -> None:
        """Close the pool's connections and the sentinels' (errors are the caller's)."""
        await self.client.aclose()
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                await client.aclose()


#: The URL scheme that names a primary through Redis Sentinel.
SENTINEL_SCHEME = "redis+sentinel"
#: Sentinel's own default port, for a host given without one.
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelAddress:
    """A ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]`` URL, read.

    The user and password are the primary's (and its replicas'); the sentinels
    are reached without authentication.
    """

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


_Read = tuple[SplitResult, tuple[tuple[str, int], ...], str | None, str | None]


def _read(url: str, scheme: str, default_port: int | None) -> _Read | None:
    """``url`` split (None when its scheme is not ``scheme``): its parts, hosts, user and password."""
    parts = urlsplit(url)
    if parts.scheme != scheme:
        return None
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user, colon, secret = userinfo.partition(":")
    username = unquote(user) or None if at else None
    password = unquote(secret) if at and colon else None
    return parts, _hosts(hosts, default_port), username, password


def _hosts(hosts: str, default_port: int | None) -> tuple[tuple[str, int], ...]:
    """``host[:port][,host[:port]...]`` read (an IPv6 host in brackets); ValueError if malformed."""
    out: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, port = item.strip(), "" if default_port is None else str(default_port)
        if host.rfind(":") > host.rfind("]"):  # a port follows (an IPv6 host is in brackets)
            host, _, port = host.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit():
            raise ValueError(f"address {item!r} is not host{'[:port]' if default_port else ':port'}")
        out.append((host, int(port)))
    return tuple(out)


def parse_sentinel_url(url: str) -> SentinelAddress | None:
    """The Sentinel address a ``redis+sentinel://`` URL names; None for any other scheme.

    Raises ValueError for a Sentinel URL without hosts or service, with a bad
    port or database number, or with a query string (no option is read from it).
    """
    read = _read(url, SENTINEL_SCHEME, SENTINEL_PORT)
    if read is None:
        return None
    parts, sentinels, username, password = read
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path must be /<service name> or /<service name>/<db>")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"database {path[1]!r} is not a number")
    if parts.query or parts.fragment:
        raise ValueError("a redis+sentinel URL takes no query string or fragment")
    return SentinelAddress(sentinels, path[0], int(path[1]) if len(path) == 2 else 0, username, password)


#: The URL scheme that names a Redis Cluster by some of its nodes.
CLUSTER_SCHEME = "redis+cluster"


@dataclass(frozen=True)
class ClusterAddress:
    """A ``redis+cluster://[[user]:password@]host:port[,host:port...]`` URL, read: some
    nodes of the cluster (any one that answers tells the client about the others)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None


def parse_cluster_url(url: str) -> ClusterAddress | None:
    """The cluster a ``redis+cluster://`` URL names; None for any other scheme.

    Raises ValueError for a cluster URL without nodes, with a node without a
    port, with a path other than ``/`` or ``/0`` (a cluster has database 0
    only), or with a query string.
    """
    read = _read(url, CLUSTER_SCHEME, None)
    if read is None:
        return None
    parts, nodes, username, password = read
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has database 0 only: the path must be empty, / or /0")
    if parts.query or parts.fragment:
        raise ValueError("a redis+cluster URL takes no query string or fragment")
    return ClusterAddress(nodes, username, password)


def channel_layer_host(url: str, **options: Any) -> dict[str, Any]:
    """channels_redis's ``hosts`` entry for the Redis that ``url`` names, so that the
    channel layer and the registry are configured from one URL.

    A ``redis://`` or ``rediss://`` URL gives ``{"address": url, **options}``; a
    ``redis+sentinel://`` URL (:func:`parse_sentinel_url`) gives its sentinels, the
    service as ``master_name``, the database, and the user and password of the primary
    when the URL has them. ``options`` (e.g. ``socket_timeout=15``) are added to the
    entry as they are. Raises ValueError for a malformed Sentinel URL. Nothing is
    checked against a running Redis.
    """
    if parse_cluster_url(url) is not None:
        raise ValueError(
            "channels_redis cannot use a Redis Cluster: use wsmanager.layers.RedisClusterChannelLayer "
            "with the redis+cluster:// URL (docs/layers.md)"
        )
    address = parse_sentinel_url(url)
    if address is None:
        return {"address": url, **options}
    entry: dict[str, Any] = {
        "sentinels": list(address.sentinels),
        "master_name": address.service,
        "db": address.db,
    }
    if address.username is not None:
        entry["username"] = address.username
    if address.password is not None:
        entry["password"] = address.password
    return {**entry, **options}


class _SentinelConnection(SentinelManagedConnection):
    """A connection to the primary that asks the sentinels on every reconnect.

    redis-py's own class asks them only in ``connect()``; a command that
    reconnects on its retry (after a READONLY reply of a demoted primary, or
    a refused connection) goes through ``connect_check_health()`` and would
    reach the old address again, failing the retry. Here that path asks the
    sentinels too.
    """

    _addressed = False  # True while connect_to() connects to an address just asked for

    async def connect_to(self, address: tuple[str, int]) -> None:
        self._addressed = True
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self._addressed = False

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._addressed or self.is_connected or not self.connection_pool.is_master:
            await super().connect_check_health(check_health, retry_socket_connect)
        else:
            await self.connect()  # type: ignore[no-untyped-call]


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool (connects to whichever server the sentinels name as
    primary; a connection refused, or a READONLY reply of a demoted primary,
    makes the next connection ask again) with the blocking pool's bound: a
    burst beyond ``max_connections`` waits up to ``timeout`` seconds."""


def make_client(url: str, options: dict[str, Any]) -> tuple[Client, Sentinel | None]:
    """A client for ``url`` (nothing is connected yet) and, for a ``redis+sentinel://``
    URL, its Sentinel client.

    ``redis://``: a bounded, blocking pool. ``redis+sentinel://``: the same, to the
    primary the sentinels name. ``redis+cluster://``: redis-py's cluster client,
    which learns the slots from any node named and follows MOVED and failovers;
    ``max_connections`` bounds each node's connections (a burst beyond it fails
    at once instead of waiting ``timeout``). Raises ValueError for a URL neither
    redis-py nor :func:`parse_sentinel_url` / :func:`parse_cluster_url` reads.
    """
    cluster = parse_cluster_url(url)
    if cluster is not None:
        kept = ("max_connections", "socket_connect_timeout", "socket_timeout", "decode_responses")
        client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in cluster.nodes],
            username=cluster.username,
            password=cluster.password,
            **{k: v for k, v in options.items() if k in kept},
        )
        return client, None
    address = parse_sentinel_url(url)
    if address is None:
        return Redis.from_pool(BlockingConnectionPool.from_url(url, **options)), None
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = Sentinel(address.sentinels, sentinel_kwargs=timeouts)
    pool = _BlockingSentinelPool(  # type: ignore[no-untyped-call]
        address.service,
        sentinel,
        db=address.db,
        username=address.username,
        password=address.password,
        connection_class=_SentinelConnection,
        **options,
    )
    return Redis.from_pool(pool), sentinel


def pool_options(
    max_connections: int, pool_timeout: float, socket_connect_timeout: float, socket_timeout: float
) -> dict[str, Any]:
    """redis-py pool options: bounded, with timeouts and one quick reconnect."""
    return {
        "max_connections": max_connections,
        "timeout": pool_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "socket_timeout": socket_timeout,
        "decode_responses": True,
        # One quick retry heals a connection Redis closed (e.g. after a restart).
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 1, (RedisConnectionError,)),
    }


def bound_client(bounds: dict[asyncio.AbstractEventLoop, Bound], url: str, options: dict[str, Any]) -> Bound:
    """The running loop's client (made on first use); entries of closed loops are dropped."""
    loop = asyncio.get_running_loop()
    bound = bounds.get(loop)
    if bound is None:
        for old in [old for old in list(bounds) if old.is_closed()]:
            bounds.pop(old, None)
        client, sentinel = make_client(url, options)
        bound = bounds[loop] = Bound(client, sentinel=sentinel)
    return bound


def dumps_info(info: ConnectionInfo) -> str:
    """The stored form of an entry (UTF-8-safe compact JSON)."""
    return dumps(info.to_json())


def loads_info(raw: str) -> ConnectionInfo:
    return ConnectionInfo.from_json(json.loads(raw))


def departures(items: list[Any]) -> list[Departure]:
    """Parse a sweep's reply tail: per socket, its entry, n, then n groups left."""
    out: list[Departure] = []
    i = 0
    while i < len(items):
        count = int(items[i + 1])
        out.append(Departure.of(loads_info(str(items[i])), (str(g) for g in items[i + 2 : i + 2 + count])))
        i += 2 + count
    return out


def redact(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
