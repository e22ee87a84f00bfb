"""The Redis registry's small parts: entry and departure encoding, the
outcome of a compare-and-set, the connection pool's options and its one
client per event loop, URL redaction and glob escaping. No Redis command is
sent from here.

Entries are stored as compact JSON with :func:`wsmanager_client.protocol.dumps`,
which writes lone surrogates (a client may send ``"\\udfff"``) as ``\\u``
escapes, so every entry is valid UTF-8 and redis-py can always send it.
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from wsmanager_client.protocol import dumps

from .._base import ConnectionInfo, Departure

__all__ = [
    "Bound",
    "Outcome",
    "bound_client",
    "departures",
    "dumps_info",
    "glob_escape",
    "loads_info",
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


@dataclass
class Bound:
    """What belongs to one event loop: the client (and its pool) and the sweep lock."""

    client: Redis
    sweep_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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
        pool = BlockingConnectionPool.from_url(url, **options)
        bound = bounds[loop] = Bound(Redis.from_pool(pool))
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
