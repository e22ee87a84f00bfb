"""The Redis registry's last-activity store: one hash per node, ``{P}:activity:<node>``.

Each node's heartbeat replaces its hash (socket id -> Unix time of the
socket's last frame in or out, as text) in one transaction: DEL, HSET,
PEXPIRE ``node_ttl``. The hash thus holds only the node's open sockets, and
expires with the node's liveness when the node stops beating: nothing to
sweep. Nothing is written per frame.

:class:`LastActivity` is a mixin of :class:`~wsmanager.registry.redis.RedisRegistry`,
one of the package's mixins, each declaring what it uses of the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager

from .._base import ConnectionInfo
from ._common import Client

__all__ = ["LastActivity"]


class LastActivity:
    """``put_node_activity`` and ``last_activity`` over the ``{P}:activity:<node>`` hashes."""

    # Provided by RedisRegistry, declared as the other mixins (``_recovery``) declare them.
    keyspace: str
    node_ttl: float
    _redis: Callable[..., AbstractAsyncContextManager[Client]]

    def _activity_key(self, node: str) -> str:
        return f"{self.keyspace}:activity:{node}"

    async def put_node_activity(self, node: str, activity: Mapping[str, float]) -> None:
        """Replace ``node``'s published last activities (one transaction); they expire after ``node_ttl``."""
        key = self._activity_key(node)
        async with (
            self._redis("put_node_activity", sweep=False) as r,
            r.pipeline(transaction=True) as pipe,
        ):
            pipe.delete(key)
            if activity:
                pipe.hset(key, mapping={sid: repr(float(when)) for sid, when in activity.items()})
                pipe.pexpire(key, max(1, round(self.node_ttl * 1000)))
            await pipe.execute()

    async def last_activity(self, sockets: Iterable[ConnectionInfo]) -> dict[str, float]:
        """One HMGET per node of the ``sockets`` (pipelined); ids without a published time are left out."""
        by_node: dict[str, list[str]] = {}
        for info in sockets:
            by_node.setdefault(info.node, []).append(info.id)
        if not by_node:
            return {}
        nodes = list(by_node)
        async with self._redis("last_activity") as r, r.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.hmget(self._activity_key(node), by_node[node])
            replies = await pipe.execute()
        found: dict[str, float] = {}
        for node, values in zip(nodes, replies, strict=True):
            for sid, value in zip(by_node[node], values, strict=True):
                if value is not None:
                    found[sid] = float(value)
        return found
