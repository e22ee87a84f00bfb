"""Topic history on Redis: one stream and one hash per topic, shared by every process.

Key layout (``P`` the registry's prefix, ``H`` the escaped handler name,
``T`` the escaped topic name; ``{H:T}`` is a Redis Cluster hash tag, so
both keys of a topic share a slot and topics spread over the cluster)::

    P:topic-meta:{H:T}    hash     e (the epoch), o (the last offset)
    P:topic-history:{H:T} stream   one entry per publication, id "<offset>-0":
                                   t (Unix ms, the publisher's clock), e (event), d (data, JSON)

Each append and each read is one Lua script (atomic with respect to every
other process): the script first checks that the history was not lost,
then works. The history counts as lost, and gets a new random epoch with
offsets from 1 again, when the hash is missing, or when the hash says
publications were made but the stream is missing (a flushed or restarted
Redis without persistence, a deleted key, the keys' expiry). An append is
``HINCRBY`` + ``XADD ... MAXLEN = size`` + age trimming (``XTRIM MINID``
past the entries older than ``ttl``, after one ``XRANGE ... COUNT 1`` that
finds the oldest is young enough, the usual case) + ``PEXPIRE`` of both keys
(``ttl`` plus a day after the last publication; no expiry without ``ttl``).
A read trims by age the same way, then ``XRANGE``s after the offset.

Errors are raised as :class:`~wsmanager.exceptions.RegistryUnavailable`,
like the registry's.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import quote

from redis.asyncio import Redis, RedisCluster

from ._history import History, Position, Publication, Read, new_epoch

__all__ = ["RedisHistory"]

#: Seconds the keys of a topic outlive its ttl after its last publication.
KEY_MARGIN = 86400

_ENSURE = """
local meta, stream = KEYS[1], KEYS[2]
local function ensure(fresh, key_ttl)
  local epoch = redis.call('HGET', meta, 'e')
  local last = tonumber(redis.call('HGET', meta, 'o') or '0')
  if (not epoch) or (last > 0 and redis.call('EXISTS', stream) == 0) then
    epoch = fresh
    last = 0
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'e', epoch, 'o', 0)
    if key_ttl > 0 then redis.call('PEXPIRE', meta, key_ttl) end
  end
  return epoch, last
end
local function trim_older(cutoff)
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #oldest == 0 or tonumber(oldest[1][2][2]) >= cutoff then return end
  while true do
    local batch = redis.call('XRANGE', stream, '-', '+', 'COUNT', 100)
    if #batch == 0 then return end
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][2]) >= cutoff then
        redis.call('XTRIM', stream, 'MINID', entry[1])
        return
      end
    end
    local last_id = batch[#batch][1]
    local next_offset = tonumber(string.match(last_id, '^(%d+)')) + 1
    redis.call('XTRIM', stream, 'MINID', next_offset .. '-0')
    if #batch < 100 then return end
  end
end
"""

# ARGV: event, data, size, now_ms, ttl_ms (0: none), key_ttl_ms (0: none), fresh epoch
_APPEND = (
    _ENSURE
    + """
local size, now, ttl, key_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local epoch = ensure(ARGV[7], key_ttl)
local offset = redis.call('HINCRBY', meta, 'o', 1)
redis.call('XADD', stream, 'MAXLEN', size, offset .. '-0', 't', now, 'e', ARGV[1], 'd', ARGV[2])
if ttl > 0 then trim_older(now - ttl) end
if key_ttl > 0 then
  redis.call('PEXPIRE', meta, key_ttl)
  redis.call('PEXPIRE', stream, key_ttl)
end
return {offset, epoch}
"""
)

# ARGV: since offset (-1: none), since epoch, limit, now_ms, ttl_ms (0: none), key_ttl_ms, fresh epoch
# Reply: {epoch, last, recovered (0/1), more (0/1), entries}
_READ = (
    _ENSURE
    + """
local since, limit, now, ttl, key_ttl = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]), tonumber(ARGV[6])
local epoch, last = ensure(ARGV[7], key_ttl)
if ttl > 0 then trim_older(now - ttl) end
if since < 0 then
  if limit == 0 then return {epoch, last, 0, 0, {}} end
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', limit + 1)
  local more = 0
  if #newest > limit then more = 1; table.remove(newest) end
  return {epoch, last, 0, more, newest}
end
if epoch ~= ARGV[2] or since > last then return {epoch, last, 0, 0, {}} end
local first = last + 1
local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #oldest > 0 then first = tonumber(string.match(oldest[1][1], '^(%d+)')) end
if since + 1 < first then return {epoch, last, 0, 0, {}} end
if limit == 0 or since == last then return {epoch, last, 1, (since < last) and 1 or 0, {}} end
local after = redis.call('XRANGE', stream, '(' .. since .. '-0', '+', 'COUNT', limit + 1)
local more = 0
if #after > limit then more = 1; table.remove(after) end
return {epoch, last, 1, more, after}
"""
)


def _ms(seconds: float | None) -> int:
    return 0 if seconds is None else max(1, round(seconds * 1000))


class RedisHistory(History):
    """Topic history in the registry's Redis database (see the module).

    ``redis(action)`` is the registry's client context (errors translated);
    ``prefix`` its key prefix.
    """

    def __init__(
        self,
        redis: Callable[[str], AbstractAsyncContextManager[Redis | RedisCluster]],
        prefix: str,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__() if clock is None else super().__init__(clock)
        self._redis = redis
        self.prefix = prefix
        self._scripts: dict[int, Any] = {}

    def keys(self, handler: str, topic: str) -> tuple[str, str]:
        """The (hash, stream) keys of a topic, hash-tagged by handler and topic: one slot
        of a Redis Cluster for both (the scripts use both), topics spread over slots."""
        tail = f"{{{quote(handler, safe='')}:{quote(topic, safe='')}}}"
        return f"{self.prefix}:topic-meta:{tail}", f"{self.prefix}:topic-history:{tail}"

    def _script(self, r: Redis | RedisCluster, source: str) -> Any:
        key = id(r)
        scripts = self._scripts.get(key)
        if scripts is None:
            scripts = self._scripts[key] = {
                "append": r.register_script(_APPEND),
                "read": r.register_script(_READ),
            }
        return scripts["append" if source is _APPEND else "read"]

    @staticmethod
    def _key_ttl(ttl: float | None) -> int:
        return 0 if ttl is None else _ms(ttl + KEY_MARGIN)

    async def append(
        self, handler: str, topic: str, event: str, data_json: str, *, size: int, ttl: float | None
    ) -> Publication:
        now = self.clock()
        args = [event, data_json, size, round(now * 1000), _ms(ttl), self._key_ttl(ttl), new_epoch()]
        async with self._redis("topic_append") as r:
            offset, epoch = await self._script(r, _APPEND)(keys=self.keys(handler, topic), args=args)
        return Publication(topic, int(offset), str(epoch), event, data_json, now)

    async def read(
        self, handler: str, topic: str, since: Position | None, *, limit: int, ttl: float | None
    ) -> Read:
        args = [
            -1 if since is None else since.offset,
            "" if since is None else since.epoch,
            max(0, limit),
            round(self.clock() * 1000),
            _ms(ttl),
            self._key_ttl(ttl),
            new_epoch(),
        ]
        async with self._redis("topic_read") as r:
            epoch, last, recovered, more, rows = await self._script(r, _READ)(
                keys=self.keys(handler, topic), args=args
            )
        epoch = str(epoch)
        publications = [_publication(topic, epoch, row) for row in rows]
        if since is None:
            publications.reverse()  # XREVRANGE: newest first
        return Read(Position(int(last), epoch), publications, bool(recovered), bool(more))


def _publication(topic: str, epoch: str, row: Any) -> Publication:
    entry_id, fields = row
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    offset = int(str(entry_id).split("-", 1)[0])
    return Publication(topic, offset, epoch, str(values["e"]), str(values["d"]), int(values["t"]) / 1000)
