"""Connection recovery on Redis: parking, claiming and expiring entries (the
registry's half, :class:`RedisRecovery`), and the journal, one stream per
handler, shared by every process (:class:`RedisJournal`).

Parking is drawn in :mod:`wsmanager.registry.redis._scripts` (``{P}:parked``).

Key layout (``P`` the registry's prefix, ``H`` the escaped handler name; the
braces are a Redis Cluster hash tag: a handler's journal lives in a slot of
its own, outside the registry's)::

    P:journal:{H}    stream   k (kind), t (target, JSON array), x (exclude, JSON array), m (text)
    P:journal-on:{H} string   the largest recovery window of H's sockets, while some process has
                              recoverable sockets of H (expires a day after its last renewal)

An append is one ``XADD`` with ``MAXLEN ~ max_entries`` (Redis trims whole
macro nodes, so a little more may be kept). :meth:`RedisJournal.read` asks
``XINFO STREAM`` (Redis 7.0 or newer) for ``entries-added``, ``length`` and
``recorded-first-entry-id`` before and after it reads with ``XRANGE`` in
batches: a gap that may have lost an entry to trimming is reported as
``lost``, never as empty, and one lost already is not read at all. The
batches follow the read's byte budget, so a read costs about that budget,
whatever its offset.
Errors are raised as :class:`RegistryUnavailable`, like the registry's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, cast
from urllib.parse import quote

from wsmanager_client.protocol import dumps

from .._base import Claim, ConnectionInfo
from .._journal import ZERO, Entry, Journal, Kind, Read, key_of
from . import _scripts as scripts
from ._common import Client, dumps_info

__all__ = ["RedisJournal", "RedisRecovery"]

#: How long an enable() mark lives without being renewed, in seconds (a day;
#: every process renews it while it opens or resumes recoverable sockets).
ENABLED_TTL = 86400
_BATCH = 1000
_FIRST_BATCH = 16


class RedisJournal(Journal):
    """A journal in the registry's Redis database (see the module)."""

    def __init__(
        self,
        redis: Callable[[str], AbstractAsyncContextManager[Client]],
        key: Callable[[str, str], str],
        max_entries: int = 10_000,
    ) -> None:
        super().__init__(max_entries)
        self._redis = redis
        self._key = key

    async def append(
        self, handler: str, kind: Kind, target: Iterable[str], text: str, exclude: Iterable[str] = ()
    ) -> str:
        fields = {"k": kind, "t": dumps(list(target)), "x": dumps(sorted(exclude)), "m": text}
        async with self._redis("journal_append") as r:
            offset = await r.xadd(
                self._key("journal", handler),
                fields,  # type: ignore[arg-type]
                maxlen=self.max_entries,
                approximate=True,
            )
        return str(offset)

    async def last(self, handler: str) -> str:
        async with self._redis("journal_last") as r:
            newest = await r.xrevrange(self._key("journal", handler), count=1)
        return str(newest[0][0]) if newest else ZERO

    async def read(
        self, handler: str, after: str, lost_after: str | None = None, max_bytes: int | None = None
    ) -> Read:
        """``XINFO STREAM`` first (a gap already lost is refused without reading an
        entry), ``XRANGE`` in batches sized to what ``max_bytes`` has left, then
        ``XINFO STREAM`` again: what was trimmed by the time the read ended
        (trimming takes the oldest first) decides ``lost``. A gap longer than
        ``max_entries`` is lost too (it could not have been kept)."""
        key = self._key("journal", handler)
        since = key_of(lost_after if lost_after is not None else after)
        async with self._redis("journal_read") as r:
            last, lost = _gap(await _stream_info(r, key), since)
            if lost:
                return Read([], True, last)
            entries, complete = await _read_range(r, key, after, self.max_entries + 1, max_bytes)
            last, lost = _gap(await _stream_info(r, key), since)
        if len(entries) > self.max_entries:
            lost, entries = True, entries[: self.max_entries]
        return Read(entries, lost, last, complete)

    async def trim(self, handler: str, before_ms: int) -> None:
        async with self._redis("journal_trim") as r:
            await r.xtrim(self._key("journal", handler), minid=f"{before_ms}-0", approximate=False)

    async def enable(self, handler: str, window: float) -> None:
        key = self._key("journal-on", handler)
        async with self._redis("journal_enable") as r:
            known = float(await r.get(key) or 0.0)
            await r.set(key, repr(max(window, known)), ex=ENABLED_TTL)

    async def enabled(self, handler: str) -> float:
        async with self._redis("journal_enabled") as r:
            return float(await r.get(self._key("journal-on", handler)) or 0.0)


class RedisRecovery:
    """The recovery operations of :class:`~wsmanager.registry.redis.RedisRegistry`
    (see :class:`~wsmanager.registry._base.RegistryBackend` for their contract)."""

    keyspace: str
    node_ttl: float
    _written: dict[tuple[str, str], str]
    _redis: Callable[[str], AbstractAsyncContextManager[Client]]
    _journal_key: Callable[[str, str], str]

    async def park(self, handler: str, socket_id: str, node: str, until: float, key: str = "") -> bool:
        self._written.pop((handler, socket_id), None)
        async with self._redis("park") as r:
            parked = await scripts.PARK(
                r, self.keyspace, quote(handler, safe=""), socket_id, node, round(until * 1000), key
            )
        return bool(parked)

    async def claim(self, expected: ConnectionInfo, new: ConnectionInfo) -> Claim:
        stored = dumps_info(new)
        async with self._redis("claim") as r:
            outcome, previous, deadline = await scripts.CLAIM(
                r,
                self.keyspace,
                quote(expected.handler, safe=""),
                expected.id,
                dumps_info(expected),
                stored,
                new.node,
                max(1, round(self.node_ttl * 1000)),
            )
        if outcome == "ok":
            self._written[(new.handler, new.id)] = stored
        return Claim(outcome, str(previous), float(deadline) / 1000 if deadline else 0.0)

    async def spoil(self, handler: str, socket_ids: list[str]) -> None:
        if socket_ids:
            async with self._redis("spoil") as r:
                await scripts.SPOIL(r, self.keyspace, quote(handler, safe=""), *socket_ids)

    async def expire_parked(self, limit: int = 1000) -> int:
        departed_ttl_ms = max(60_000, round(self.node_ttl * 10_000))
        async with self._redis("expire_parked") as r:
            return int(await scripts.EXPIRE(r, self.keyspace, max(1, limit), departed_ttl_ms))

    def make_journal(self, max_entries: int) -> Journal:
        """The journal in this registry's Redis database, under the same prefix."""
        return RedisJournal(self._redis, self._journal_key, max_entries)


async def _stream_info(r: Client, key: str) -> dict[str, Any]:
    """``XINFO STREAM key``; empty when there is no such key (never written, or the store lost it)."""
    try:
        info: dict[str, Any] = await r.xinfo_stream(key)
    except Exception as exc:
        if "no such key" not in str(exc).lower():
            raise
        return {}
    return info


def _gap(info: dict[str, Any], since: tuple[int, int]) -> tuple[str, bool]:
    """The stream's last offset, and whether an entry after ``since`` may have been trimmed.

    Trimming (MAXLEN, MINID) leaves no mark but a first entry later than the
    entries added: when some were trimmed and the first kept one is after
    ``since``, what lay between may be gone. (Conservative: a gap that only
    lost ``since`` itself is reported too.) A stream that is gone (never
    written, or lost with the store's data) reads as empty, its last offset
    :data:`ZERO`: a reader that had seen an offset tells by that offset.
    """
    last = str(info.get("last-generated-id") or ZERO)
    if not info:
        return last, False
    length = int(info.get("length") or 0)
    trimmed = int(info.get("entries-added") or 0) > length
    first = str(info.get("recorded-first-entry-id") or ZERO) if length else last  # all trimmed
    return last, trimmed and key_of(first) > since


async def _read_range(
    r: Client, key: str, after: str, most: int, max_bytes: int | None
) -> tuple[list[Entry], bool]:
    """``XRANGE key (after +`` in batches: at most ``most`` entries, and, with ``max_bytes``,
    no batch once the entries read weigh that much; (the entries, whether the range ended).

    Each batch asks for as many entries as the budget has left room for at the
    heaviest weight seen so far, plus the one that would cross it (16 at
    first), so a read passes its budget by about one entry when the entries
    weigh alike, and never by more than a batch.
    """
    entries: list[Entry] = []
    weight = heaviest = 0
    start = f"({after}"
    while len(entries) < most:
        count = min(_BATCH, most - len(entries))
        if max_bytes is not None:
            if weight >= max_bytes:
                return entries, False
            count = min(count, (max_bytes - weight) // heaviest + 1 if heaviest else _FIRST_BATCH)
        rows = await r.xrange(key, min=start, max="+", count=count) or []
        for offset, fields in rows:
            entry = _entry(str(offset), cast("dict[str, str]", fields))
            entries.append(entry)
            weight += entry.weight
            heaviest = max(heaviest, entry.weight)
        if len(rows) < count:
            return entries, True
        start = f"({rows[-1][0]!s}"
    return entries, False


def _entry(offset: str, fields: dict[str, str]) -> Entry:
    kind = cast("Kind", fields.get("k", "ids"))
    target = tuple(str(t) for t in json.loads(fields.get("t") or "[]"))
    exclude = frozenset(str(x) for x in json.loads(fields.get("x") or "[]"))
    return Entry(offset, kind, target, fields.get("m", ""), exclude)
