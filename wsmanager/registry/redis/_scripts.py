"""The Lua scripts of the Redis registry, each one atomic on the server.

Every script takes ``ARGV[1]`` = ``P``, the registry's keyspace: its prefix
in braces (``{wsm}``), a Redis Cluster hash tag that puts every key below in
one slot. The scripts build key names themselves (the key layout is below);
``P`` is also passed as the one declared key (``KEYS[1]``, never written), so
that a cluster client sends each script to the node that serves that slot. Each runs by its SHA1
(``EVALSHA``) and is sent again in full when the server does not know it,
for instance after a restart.

Key layout, ``P`` being ``{prefix}`` and ``H`` the handler name with ``%`` and
``:`` percent-escaped::

    P:sockets:H          hash   socket id -> ConnectionInfo JSON (to_json)
    P:routes:H           hash   socket id -> node
    P:groups:H           set    names of the handler's non-empty groups
    P:group:H:<group>    set    socket ids in the group
    P:presence:H:<group> hash   member key -> how many of its sockets are in the group
    P:user:H:<user id>   set    socket ids of the user
    P:node:<node>        set    "H:<socket id>" of every socket held by the node
    P:gnodes:H:<group>   hash   node (or ~parked) -> how many of the group's sockets it holds
                                (a broadcast reads it: one message per node, no member list)
    P:nodes              set    every node that has registered a socket or a heartbeat
    P:alive:<node>       string the node's liveness key, expires after node_ttl
    P:departed           list   departures of forgotten nodes' sockets, not yet taken
    P:stats:<node>       hash   the node's counters as of its last heartbeat, expires after node_ttl
    P:parked             zset   "H:<socket id>" of every parked socket, scored by the end of its window (ms)
    P:activity:<node>    hash   socket id -> time of its last frame, as of the node's last heartbeat,
                                expires after node_ttl (written by redis_activity.py)

A parked socket (connection recovery) keeps its entry, groups, user and
presence; its route is ``~parked`` and it is in no node's set.

``P:gnodes:H:<group>`` changes in the same scripts as the group and the
routes: ``join``/``leave`` count the socket under its route, ``park`` and
``CLAIM`` move its groups' counts from the old route to the new one, and a
count that reaches 0 is deleted (so a reaped node leaves no field behind).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

from redis.exceptions import NoScriptError

from .._base import ConnectionInfo
from ._common import Client, Outcome, dumps_info, loads_info

__all__ = [
    "ADD",
    "ALIVE",
    "CLAIM",
    "EXPIRE",
    "GROUP_NODES",
    "PARK",
    "REMOVE",
    "REPLACE",
    "SPOIL",
    "SWEEP",
    "Script",
    "compare_and_set",
]

# Shared by every script. join/leave put a socket in a group or take it out,
# keeping its member's socket count there (presence) in step, and return true
# when the member joined/left the group. drop(h, sid, raw) forgets one socket
# whose entry is ``raw``, from its groups, its user, its node and the
# handler's hashes; it returns the groups its member left, and the member key.
# queue_departure puts a departure that left groups on P:departed for
# take_departures; park routes a socket to ~parked until a deadline.
_LIB: Final = """
local P = ARGV[1]
local function mkey(u, sid)
  if type(u) ~= 'string' then return 'socket:' .. sid end
  if string.sub(u, 1, 7) == 'socket:' or string.sub(u, 1, 5) == 'user:' then return 'user:' .. u end
  return u
end
local function route_of(h, sid)
  return redis.call('HGET', P .. ':routes:' .. h, sid)
end
local function gnode(h, g, n, d)
  if not n then return end
  local k = P .. ':gnodes:' .. h .. ':' .. g
  if redis.call('HINCRBY', k, n, d) <= 0 then redis.call('HDEL', k, n) end
end
local function reroute(h, sid, raw, to)
  local from = route_of(h, sid)
  if from == to then return end
  local e = cjson.decode(raw)
  if type(e['groups']) == 'table' then
    for _, g in ipairs(e['groups']) do
      gnode(h, g, from, -1)
      gnode(h, g, to, 1)
    end
  end
end
local function join(h, g, sid, m)
  if redis.call('SADD', P .. ':group:' .. h .. ':' .. g, sid) == 0 then return false end
  gnode(h, g, route_of(h, sid), 1)
  redis.call('SADD', P .. ':groups:' .. h, g)
  return redis.call('HINCRBY', P .. ':presence:' .. h .. ':' .. g, m, 1) == 1
end
local function leave(h, g, sid, m)
  local gk = P .. ':group:' .. h .. ':' .. g
  if redis.call('SREM', gk, sid) == 0 then return false end
  gnode(h, g, route_of(h, sid), -1)
  if redis.call('SCARD', gk) == 0 then redis.call('SREM', P .. ':groups:' .. h, g) end
  local pk = P .. ':presence:' .. h .. ':' .. g
  if redis.call('HINCRBY', pk, m, -1) > 0 then return false end
  redis.call('HDEL', pk, m)
  return true
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function park(h, sid, deadline, raw)
  reroute(h, sid, raw, '~parked')
  redis.call('HSET', P .. ':routes:' .. h, sid, '~parked')
  redis.call('ZADD', P .. ':parked', deadline, h .. ':' .. sid)
end
local function queue_departure(raw, left, ttl_ms)
  if #left == 0 then return end
  local item = {raw}
  for _, g in ipairs(left) do item[#item + 1] = g end
  redis.call('RPUSH', P .. ':departed', cjson.encode(item))
  redis.call('PEXPIRE', P .. ':departed', ttl_ms)
end
local function drop(h, sid, raw)
  local e = cjson.decode(raw)
  local m = mkey(e['user_id'], sid)
  local left = {}
  if type(e['groups']) == 'table' then
    for _, g in ipairs(e['groups']) do
      if leave(h, g, sid, m) then left[#left + 1] = g end
    end
  end
  if type(e['user_id']) == 'string' then
    redis.call('SREM', P .. ':user:' .. h .. ':' .. e['user_id'], sid)
  end
  if type(e['node']) == 'string' then
    redis.call('SREM', P .. ':node:' .. e['node'], h .. ':' .. sid)
  end
  redis.call('HDEL', P .. ':sockets:' .. h, sid)
  redis.call('HDEL', P .. ':routes:' .. h, sid)
  redis.call('ZREM', P .. ':parked', h .. ':' .. sid)
  return left, m
end
"""

# ARGV: P, h, sid, entry, node, has_user ("0"/"1"), user, ttl_ms, group...
# -> the groups whose member joined (net of the entry replaced, if any)
_ADD: Final = """
local h, sid, node = ARGV[2], ARGV[3], ARGV[5]
local m = mkey(ARGV[6] == '1' and ARGV[7] or false, sid)
local was = {}
local old = redis.call('HGET', P .. ':sockets:' .. h, sid)
if old then
  local left, om = drop(h, sid, old)
  if om == m then
    for _, g in ipairs(left) do was[g] = true end
  end
end
redis.call('HSET', P .. ':sockets:' .. h, sid, ARGV[4])
redis.call('HSET', P .. ':routes:' .. h, sid, node)
local joined = {}
for i = 9, #ARGV do
  if join(h, ARGV[i], sid, m) and not was[ARGV[i]] then joined[#joined + 1] = ARGV[i] end
end
if ARGV[6] == '1' then redis.call('SADD', P .. ':user:' .. h .. ':' .. ARGV[7], sid) end
redis.call('SADD', P .. ':node:' .. node, h .. ':' .. sid)
redis.call('SADD', P .. ':nodes', node)
redis.call('SET', P .. ':alive:' .. node, '1', 'PX', ARGV[8], 'NX')
return joined
"""

# ARGV: P, h, sid, node ("": any), key ("": any; else the entry's resume_key must be it)
# -> {the old entry, group its member left...}, or nil
_REMOVE: Final = """
local raw = redis.call('HGET', P .. ':sockets:' .. ARGV[2], ARGV[3])
if not raw then return false end
if ARGV[4] ~= '' and redis.call('HGET', P .. ':routes:' .. ARGV[2], ARGV[3]) ~= ARGV[4] then
  return false
end
if ARGV[5] ~= '' and cjson.decode(raw)['resume_key'] ~= ARGV[5] then return false end
local out = {raw}
for _, g in ipairs((drop(ARGV[2], ARGV[3], raw))) do out[#out + 1] = g end
return out
"""

# Compare-and-set. ARGV: P, h, sid, expected, new, op ("meta"/"gadd"/"gdel"),
# group, member key -> 2 written and the member joined (gadd) or left (gdel)
# the group, 1 written, 0 the entry changed meanwhile, -1 the socket is gone.
_REPLACE: Final = """
local h, sid, op, g, m = ARGV[2], ARGV[3], ARGV[6], ARGV[7], ARGV[8]
local cur = redis.call('HGET', P .. ':sockets:' .. h, sid)
if not cur then return -1 end
if cur ~= ARGV[4] then return 0 end
redis.call('HSET', P .. ':sockets:' .. h, sid, ARGV[5])
if (op == 'gadd' and join(h, g, sid, m)) or (op == 'gdel' and leave(h, g, sid, m)) then
  return 2
end
return 1
"""

# ARGV: P, node, ttl_ms -> 1 if the liveness key still existed
_ALIVE: Final = """
local existed = redis.call('EXISTS', P .. ':alive:' .. ARGV[2])
redis.call('SET', P .. ':alive:' .. ARGV[2], '1', 'PX', ARGV[3])
redis.call('SADD', P .. ':nodes', ARGV[2])
return existed
"""

# ARGV: P, budget, node, departed_ttl_ms. With a node: forget up to ``budget``
# of its sockets (remove_node). Without (""): the same for every node whose
# liveness key is gone. Departures whose member left a group are also queued
# on P:departed as JSON arrays [entry, group...].
# -> {more (0/1), smallest PTTL of the live nodes or -1,
#     then per socket: its entry, the number n of groups its member left, n groups}
_SWEEP: Final = """
local budget = tonumber(ARGV[2])
local out = {0, -1}
local function reap(n)
  local members = redis.call('SPOP', P .. ':node:' .. n, budget)
  budget = budget - #members
  for _, m in ipairs(members) do
    local i = string.find(m, ':', 1, true)
    local h, sid = string.sub(m, 1, i - 1), string.sub(m, i + 1)
    if redis.call('HGET', P .. ':routes:' .. h, sid) == n then
      local raw = redis.call('HGET', P .. ':sockets:' .. h, sid)
      local window = raw and tonumber(cjson.decode(raw)['recovery']) or 0
      if window > 0 then
        park(h, sid, now_ms() + math.floor(window * 1000), raw)
      elseif raw then
        local left = drop(h, sid, raw)
        out[#out + 1] = raw
        out[#out + 1] = #left
        for _, g in ipairs(left) do out[#out + 1] = g end
        queue_departure(raw, left, ARGV[4])
      end
    end
  end
  if redis.call('EXISTS', P .. ':node:' .. n) == 0 then
    redis.call('SREM', P .. ':nodes', n)
  else
    out[1] = 1
  end
end
if ARGV[3] ~= '' then
  redis.call('DEL', P .. ':alive:' .. ARGV[3])
  reap(ARGV[3])
  return out
end
for _, n in ipairs(redis.call('SMEMBERS', P .. ':nodes')) do
  local ttl = redis.call('PTTL', P .. ':alive:' .. n)
  if ttl == -2 then
    if budget > 0 then reap(n) else out[1] = 1 end
  elseif ttl >= 0 and (out[2] < 0 or ttl < out[2]) then
    out[2] = ttl
  end
end
return out
"""


# ARGV: P, h, sid, node, until_ms, key ("": any)
# -> 1 parked, 0 not routed to node, not that key's, or unknown
_PARK: Final = """
local h, sid = ARGV[2], ARGV[3]
if redis.call('HGET', P .. ':routes:' .. h, sid) ~= ARGV[4] then return 0 end
local raw = redis.call('HGET', P .. ':sockets:' .. h, sid)
if not raw then return 0 end
if ARGV[6] ~= '' and cjson.decode(raw)['resume_key'] ~= ARGV[6] then return 0 end
redis.call('SREM', P .. ':node:' .. ARGV[4], h .. ':' .. sid)
park(h, sid, tonumber(ARGV[5]), raw)
return 1
"""

# ARGV: P, h, sid, expected entry, new entry, new node, ttl_ms
# -> {outcome ("ok"/"unknown"/"changed"/"expired"), previous route, end of its window (ms) or ""}
_CLAIM: Final = """
local h, sid, node = ARGV[2], ARGV[3], ARGV[6]
local cur = redis.call('HGET', P .. ':sockets:' .. h, sid)
if not cur then return {'unknown', '', ''} end
if cur ~= ARGV[4] then return {'changed', '', ''} end
local route = redis.call('HGET', P .. ':routes:' .. h, sid) or ''
local deadline = ''
if route == '~parked' then
  deadline = redis.call('ZSCORE', P .. ':parked', h .. ':' .. sid) or ''
  if deadline ~= '' and tonumber(deadline) < now_ms() then return {'expired', route, deadline} end
  redis.call('ZREM', P .. ':parked', h .. ':' .. sid)
elseif route ~= '' then
  redis.call('SREM', P .. ':node:' .. route, h .. ':' .. sid)
end
reroute(h, sid, cur, node)
redis.call('HSET', P .. ':sockets:' .. h, sid, ARGV[5])
redis.call('HSET', P .. ':routes:' .. h, sid, node)
redis.call('SADD', P .. ':node:' .. node, h .. ':' .. sid)
redis.call('SADD', P .. ':nodes', node)
redis.call('SET', P .. ':alive:' .. node, '1', 'PX', ARGV[7], 'NX')
return {'ok', route, deadline}
"""

# ARGV: P, h, sid... -> nothing; the parked ones among the ids have their window end now
_SPOIL: Final = """
for i = 3, #ARGV do
  redis.call('ZADD', P .. ':parked', 'XX', 0, ARGV[2] .. ':' .. ARGV[i])
end
return 0
"""

# ARGV: P, budget, departed_ttl_ms -> how many parked sockets past their window
# were forgotten; their departures that left a group are queued on P:departed.
_EXPIRE: Final = """
local n = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. ':parked', '-inf', now_ms(), 'LIMIT', 0, ARGV[2])) do
  redis.call('ZREM', P .. ':parked', m)
  local i = string.find(m, ':', 1, true)
  local h, sid = string.sub(m, 1, i - 1), string.sub(m, i + 1)
  local raw = redis.call('HGET', P .. ':sockets:' .. h, sid)
  if raw and redis.call('HGET', P .. ':routes:' .. h, sid) == '~parked' then
    n = n + 1
    queue_departure(raw, (drop(h, sid, raw)), ARGV[3])
  end
end
return n
"""


# ARGV: P, h, group, excluded socket id... -> flat {node, count, ...}: the group's
# sockets per route (``~parked`` included), the excluded members not counted.
_GROUP_NODES: Final = """
local h, g = ARGV[2], ARGV[3]
local counts = {}
local flat = redis.call('HGETALL', P .. ':gnodes:' .. h .. ':' .. g)
for i = 1, #flat, 2 do counts[flat[i]] = tonumber(flat[i + 1]) end
local gk = P .. ':group:' .. h .. ':' .. g
for i = 4, #ARGV do
  if redis.call('SISMEMBER', gk, ARGV[i]) == 1 then
    local n = route_of(h, ARGV[i])
    if n and counts[n] then counts[n] = counts[n] - 1 end
  end
end
local out = {}
for n, c in pairs(counts) do
  if c > 0 then
    out[#out + 1] = n
    out[#out + 1] = c
  end
end
return out
"""


class Script:
    """A Lua script run by its SHA1, loaded on first use (and after a Redis restart)."""

    def __init__(self, body: str) -> None:
        self.text = _LIB + body
        self.sha = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Client, *args: str | int) -> Any:
        """Run with ``ARGV`` = ``args``, ``args[0]`` being the keyspace (the prefix in braces).

        The keyspace itself is passed as the one declared key (never written): a
        cluster client sends the script to the node serving the keyspace's slot,
        where every key the script builds from ``ARGV[1]`` lives.
        """
        anchor = str(args[0])
        try:
            return await client.evalsha(self.sha, 1, anchor, *args)
        except NoScriptError:
            return await client.eval(self.text, 1, anchor, *args)


ADD: Final = Script(_ADD)
REMOVE: Final = Script(_REMOVE)
REPLACE: Final = Script(_REPLACE)
ALIVE: Final = Script(_ALIVE)
SWEEP: Final = Script(_SWEEP)
PARK: Final = Script(_PARK)
CLAIM: Final = Script(_CLAIM)
EXPIRE: Final = Script(_EXPIRE)
SPOIL: Final = Script(_SPOIL)
GROUP_NODES: Final = Script(_GROUP_NODES)


async def compare_and_set(
    client: Client,
    prefix: str,
    handler: str,
    socket_id: str,
    change: Callable[[ConnectionInfo], ConnectionInfo | None],
    op: str,
    group: str,
    guess: str | None,
) -> tuple[Outcome, ConnectionInfo | None, str | None]:
    """Rewrite an entry with :data:`REPLACE`, retried while others change it meanwhile.

    ``change`` returns the new entry, or None when nothing is to be written.
    ``guess`` is the stored form the caller believes is there (or None: read
    it first); a stale guess costs one failed attempt, never a wrong write.
    Returns the outcome, the new entry and its stored form (None when nothing
    was written). Lock-free: a retry happens only because another write succeeded.
    """
    script_op = {"group_add": "gadd", "group_discard": "gdel"}.get(op, "meta")
    handler_key = quote(handler, safe="")
    while True:
        guessed = guess is not None
        raw: bytes | str | None
        if guess is not None:
            raw, guess = guess, None
        else:
            raw = await client.hget(f"{prefix}:sockets:{handler_key}", socket_id)
        if raw is None:
            return Outcome.GONE, None, None
        new = change(loads_info(str(raw)))
        if new is None:
            if guessed:  # "nothing to do" must come from the real entry
                continue
            return Outcome.UNCHANGED, None, None
        stored = dumps_info(new)
        reply = await REPLACE(
            client, prefix, handler_key, socket_id, str(raw), stored, script_op, group, new.member
        )
        outcome = Outcome(reply)
        if outcome is not Outcome.CHANGED_MEANWHILE:
            return outcome, new, stored
