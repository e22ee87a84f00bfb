"""Connection recovery: a socket that drops comes back with its id, groups,
presence and every notification it missed.

The parts (docs/protocol.md, "Connection recovery", has the wire protocol):

* **The journal** (:mod:`wsmanager.registry._journal`, one per handler, in Redis with
  the Redis registry): every JSON-RPC notification sent to a recoverable
  handler's sockets through its manager, or by the socket's own ``notify``,
  is appended once *before* it is delivered, and carries its offset (the
  ``"offset"`` member). A broadcast costs one append, whatever the number
  of recipients.
* **Parking:** when a recoverable socket drops abruptly (a close code in
  :data:`PARK_CODES`, or the server going away), its registry entry is kept,
  routed to ``wsmanager.registry.PARKED``, until its window ends. It
  stays in its groups, presence does not change, and notifications to it
  are accepted (they are in the journal). A process that dies has its
  recoverable sockets parked by whoever reaps it.
* **Resuming** (:func:`resume`): a new connection presents the socket's
  resume token and the last offset it saw. The token is checked against
  the hash kept in the entry and against the connecting user; the entry is
  claimed for this process atomically (a live old connection elsewhere is
  told to close with 4409), and only then does the connection take the
  socket's id here; then the journal is read and the notifications
  addressed to the socket are replayed before anything live. All or
  nothing: if the window is over, the journal lost part of the gap, or the
  gap holds more than the handler's bounds, the old session is released
  and the client gets a fresh socket, told why.
* **What a resume may cost** (docs/protocol.md, "What a resume costs"): the
  read starts from no earlier than the session's start point, which each
  resume moves on, and (for a parked socket) than what it surely had before
  its drop, whatever offset the client gives; it stops at
  :func:`read_budget` bytes; a gap lost already is refused before any read.
  Resumes are rate-limited per address and process
  (:func:`address_may_resume`) and per session across processes (kept in
  the entry); over either the caller closes with 1013 (:class:`Throttled`).
* **Parked sockets count** toward their address's cap in the process that
  parked them (:func:`park`); :func:`make_room` releases the oldest.
* **Expiry:** each heartbeat forgets parked sockets whose window is over
  (:meth:`~wsmanager.registry.RegistryBackend.expire_parked`); their
  departure is announced once, cluster-wide.

Guarantees and limits are in docs/protocol.md: exactly once and in order
within the window for notifications; responses to calls, server-to-client
calls and raw frames are not recovered (at most once, as without recovery).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from wsmanager_client import protocol

from . import _handler_classes as catalog
from . import _presence as presence
from . import _state
from ._conf import get_settings
from .connection._limits import TokenBucket
from .exceptions import ConfigurationError, RegistryUnavailable
from .node._hub import Node
from .observe._counters import Count, bump
from .registry import PARKED, ConnectionInfo, get_journal, get_registry
from .registry._journal import ZERO, Kind, key_of, minus_ms

__all__ = [
    "PARK_CODES",
    "READ_FACTOR",
    "REORDER_MARGIN_MS",
    "Refused",
    "Resumed",
    "Throttled",
    "Token",
    "address_may_resume",
    "enable",
    "journaled",
    "keep",
    "make_room",
    "park",
    "read_budget",
    "reset",
    "resume",
    "window_of",
]

logger = logging.getLogger(__name__)

#: Close codes after which a recoverable socket is parked: going away,
#: abnormal (no close frame), internal error, restart; and the code by which
#: the server reports a lost connection (:func:`wsmanager.servers.lost_codes`).
PARK_CODES = frozenset({1001, 1006, 1011, 1012})
#: How far before the client's offset a replay starts, in ms: notifications
#: of concurrent senders may reach a socket out of offset order, and the
#: client drops the ones it already has (docs/protocol.md).
REORDER_MARGIN_MS = 1000
#: Seconds before it was parked within which a socket may not have had frames
#: still in flight (its outbox, the TCP buffers): the loss check covers them.
IN_FLIGHT = 10.0
#: Seconds a process trusts what it learnt of a handler's journaling.
_HINT_TTL = 10.0
#: A resume reads at most this many times ``recovery_max_bytes`` from the journal,
#: unless the handler sets ``recovery_max_read``.
READ_FACTOR = 16

Failure = Literal["unknown", "refused", "expired", "overflow", "lost"]


@dataclass(frozen=True)
class Token:
    """A resume token: ``<socket id>.<secret>``; the registry keeps only the secret's hash."""

    socket_id: str
    secret: str

    @classmethod
    def new(cls, socket_id: str) -> Token:
        return cls(socket_id, secrets.token_urlsafe(32))

    @classmethod
    def parse(cls, text: str) -> Token | None:
        sid, dot, secret = text.partition(".")
        if not dot or not sid or not secret or len(text) > 200:
            return None
        return cls(sid, secret)

    @property
    def key(self) -> str:
        """What the registry keeps: the SHA-256 of the secret (hex)."""
        return hashlib.sha256(self.secret.encode("ascii", "replace")).hexdigest()

    def matches(self, key: str) -> bool:
        return bool(key) and hmac.compare_digest(self.key, key)

    def __str__(self) -> str:
        return f"{self.socket_id}.{self.secret}"


def window_of(handler: Any) -> float:
    """The recovery window of a handler class or instance (0: no recovery)."""
    window = getattr(handler, "recovery_window", None)
    if window is None:
        window = get_settings().recovery_window
    return float(window or 0.0)


# -- the senders' side -------------------------------------------------------------
_hints: dict[str, tuple[float, float]] = {}  # handler -> (window noted, until monotonic)
_trimmed: dict[str, float] = {}  # handler -> monotonic time of the last trim
_enabled: dict[tuple[str, float], float] = {}  # (handler, window) -> when this process noted it


async def journaled(handler: str) -> bool:
    """Whether notifications to ``handler``'s sockets go through the journal.

    Yes when its class (known in this process) has a recovery window, or
    when some process noted recoverable sockets of it (a route may turn
    recovery on; a process without the class, such as a command, asks the
    store, at most every 10 s).
    """
    if _class_window(handler) > 0:
        return True
    return await _noted_window(handler) > 0


async def _noted_window(handler: str) -> float:
    """The largest window some process noted for ``handler`` (cached for 10 s)."""
    cached = _hints.get(handler)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        return cached[0]
    try:
        window = await get_journal().enabled(handler)
    except RegistryUnavailable:
        window = cached[0] if cached is not None else 0.0
    _hints[handler] = (window, now + _HINT_TTL)
    return window


async def enable(handler: str, window: float) -> None:
    """A recoverable socket of ``handler`` opened or resumed: note its window for
    senders (in the store at most every 10 minutes per process and window)."""
    now = time.monotonic()
    if now - _enabled.get((handler, window), -1e9) > 600:
        await get_journal().enable(handler, window)
        _enabled[(handler, window)] = now
    noted = _hints.get(handler, (0.0, 0.0))[0]
    _hints[handler] = (max(window, noted), now + _HINT_TTL)


async def keep(
    handler: str, kind: Kind, target: tuple[str, ...], text: str, exclude: frozenset[str] = frozenset()
) -> str:
    """The notification ``text`` as it goes out: journaled, with its offset, when
    ``handler`` is journaled; unchanged otherwise."""
    if not await journaled(handler):
        return text
    journal = get_journal()
    offset = await journal.append(handler, kind, target, text, exclude)
    now = time.monotonic()
    if now - _trimmed.get(handler, -1e9) > 10.0:
        _trimmed[handler] = now
        longest = max(_class_window(handler), await _noted_window(handler)) or 3600.0
        keep_ms = round((longest + IN_FLIGHT + 10.0) * 1000)
        await journal.trim(handler, int(time.time() * 1000) - keep_ms)
    return protocol.with_offset(text, offset)


def _class_window(handler: str) -> float:
    """The window of the handler's class in this process (0: none, or not imported here)."""
    try:
        return window_of(catalog.handler_class(handler))
    except ConfigurationError:
        return 0.0


# -- parking -------------------------------------------------------------------------
async def park(info: ConnectionInfo, node: Node) -> bool:
    """Keep a dropped socket's entry for its window; False if it is not this node's.

    A socket this process parks goes on counting toward its address's
    ``max_connections_per_address`` here (:meth:`Node.note_parked`) until it
    resumes, its window ends, or a newcomer from that address needs its
    place (:func:`make_room`).
    """
    until = time.time() + info.recovery
    parked = await get_registry().park(info.handler, info.id, node.id, until, info.resume_key)
    if parked:
        bump(Count.PARKED)
        node.note_parked(info.handler, info.address, info.id, until, info.resume_key)
    return parked


async def make_room(node: Node, handler: str, address: str | None, spare: str = "") -> bool:
    """Release the socket of ``address`` this process parked first (but ``spare``), so that
    a newcomer from that address fits under the cap; False when there is none to release.

    Its session ends as if its window had: its member's departure is announced,
    its token stops working (counted ``parked_released``). A record whose session
    resumed meanwhile, elsewhere, or whose window ended, only stops counting.
    """
    oldest = node.take_oldest_parked(handler, address, spare)
    if oldest is None:
        return False
    socket_id, until, key = oldest
    if until < time.time():
        return True  # its window is over: the heartbeat forgets it
    try:
        departure = await presence.release(handler, socket_id, PARKED, key)
    except RegistryUnavailable as exc:
        logger.warning("releasing parked socket %s to make room failed (%s)", socket_id, exc)
        node.note_parked(handler, address, socket_id, until, key)
        return False
    if departure is not None:
        bump(Count.PARKED_RELEASED)
        logger.info("released parked socket %s: its address %s needed the place", socket_id, address)
    return True


# -- rate limits ---------------------------------------------------------------------
#: Resumes allowed per (handler, address, rate, burst), in this process; at most
#: _MAX_BUCKETS are kept (the least recently used go first, and start full again).
_address_buckets: OrderedDict[tuple[str, str | None, float, float], TokenBucket] = OrderedDict()
_MAX_BUCKETS = 10_000


def address_may_resume(handler: str, address: str | None, limit: tuple[float, float] | None) -> bool:
    """Whether a resume from ``address`` fits its rate (``(per second, burst)``, None: no
    limit) in this process; spends one resume when it does. Counted when it does not."""
    if limit is None:
        return True
    key = (handler, address, float(limit[0]), float(limit[1]))
    bucket = _address_buckets.get(key)
    if bucket is None:
        bucket = _address_buckets[key] = TokenBucket(*limit)
        while len(_address_buckets) > _MAX_BUCKETS:
            _address_buckets.popitem(last=False)
    else:
        _address_buckets.move_to_end(key)
    if bucket.take():
        return True
    bump(Count.RESUME_THROTTLED)
    return False


def _session_credit(info: ConnectionInfo, limit: tuple[float, float] | None, now: float) -> float | None:
    """The resumes the session has left now under ``limit`` (None: no limit); kept in its
    entry, so that the limit holds across processes (written by the claim)."""
    if limit is None:
        return None
    rate, burst = limit
    if not info.resumed_at:
        return float(burst)
    return min(float(burst), info.resume_credit + max(0.0, now - info.resumed_at) * rate)


# -- resuming ------------------------------------------------------------------------
@dataclass(frozen=True)
class Resumed:
    """A resumed session: its entry (now this process's), new token and replay."""

    info: ConnectionInfo
    token: Token
    #: The notifications to send before anything live, with their offsets.
    frames: list[str]
    #: The journal position the replay reaches.
    offset: str
    #: How many of ``frames`` are after the client's offset (the rest: the margin).
    missed: int
    #: Where the socket was: a node id, ``PARKED``, or "".
    previous: str
    #: The resume key of the connection this one replaces.
    replaced: str


@dataclass(frozen=True)
class Refused:
    """A resume that failed; the client gets a fresh socket and ``reason``."""

    reason: Failure


@dataclass(frozen=True)
class Throttled:
    """A resume over a rate limit: nothing was read or changed; the connection is closed
    with 1013 and the client may try again later with the same token."""

    limit: Literal["address", "session"]


async def resume(
    handler: Any,
    node: Node,
    token_text: str,
    offset: str,
    user_id: str | None,
    address: str | None,
    attach: Callable[[str, frozenset[str]], None],
) -> Resumed | Refused | Throttled:
    """Take over the session ``token_text`` names for ``node`` (see the module).

    ``handler`` is the connecting handler instance (its window, bounds, rate
    limits and scope). The token, the user, the route and the session's own
    rate (``resume_rate_per_session``) are checked first: a refusal there
    costs a registry read and changes nothing. Then the claim; only once it
    succeeded does ``attach(replaced key, the session's groups)`` run, where the
    caller makes the connection the holder of the id in this process (in its groups), so that a resume that
    loses a race never touches another connection. Frames routed here before
    the attach were journaled before the read that follows, so the replay has
    them. An old connection still open on another process is told to let go
    (and waited for, up to a second) before the journal is read. Raises
    :class:`RegistryUnavailable` when the store is down before the claim;
    after a successful claim, a failure releases the old session.
    """
    token = Token.parse(token_text)
    if token is None:
        return _refused("unknown")
    try:
        key_of(offset)
    except ValueError:
        logger.info("resume of %s refused: a malformed offset", token.socket_id)
        return _refused("refused")
    registry, journal = get_registry(), get_journal()
    route = dict((handler.scope.get("url_route") or {}).get("kwargs") or {})
    start_next = ""  # where this session's next resume may start: the journal's end before the claim
    for _ in range(5):  # the entry changes under us only when its old owner writes it
        info = await registry.get(handler.handler_name, token.socket_id)
        if info is None or not token.matches(info.resume_key):
            return _refused("unknown")
        if info.user_id != user_id or dict(info.path_kwargs) != route:
            logger.info("resume of %s refused: another user, or another route", token.socket_id)
            return _refused("refused")
        now = time.time()
        credit = _session_credit(info, handler.resume_rate_per_session, now)
        if credit is not None and credit < 1.0:
            bump(Count.RESUME_THROTTLED)
            return Throttled("session")
        if not start_next:
            start_next = max(await journal.last(info.handler), info.since or ZERO, key=key_of)
        fresh = Token.new(token.socket_id)
        new = info.with_changes(
            node=node.id,
            resume_key=fresh.key,
            address=address,
            recovery=window_of(handler),
            since=start_next,
            resumed_at=now if credit is not None else info.resumed_at,
            resume_credit=credit - 1.0 if credit is not None else info.resume_credit,
        )
        claim = await registry.claim(info, new)
        if claim.outcome == "changed":
            continue
        if claim.outcome != "ok":
            return _refused("expired" if claim.outcome == "expired" else "unknown")
        break
    else:
        return _refused("unknown")
    attach(info.resume_key, new.groups)
    node.forget_parked(info.handler, info.address, info.id)
    if claim.previous not in ("", PARKED, node.id):
        await node.take_over(claim.previous, info.id, info.resume_key)
    try:
        replay = await _replay(handler, info, new, offset, _sure_until(claim, info))
    except RegistryUnavailable:
        replay = "lost"
    if isinstance(replay, str):
        await _release(new, node.id)
        return _refused(replay)
    frames, position, missed = replay
    bump(Count.RESUMED)
    return Resumed(new, fresh, frames, position, missed, claim.previous, info.resume_key)


def _sure_until(claim: Any, info: ConnectionInfo) -> int:
    """Unix ms up to which the socket surely had what was addressed to it: a while
    before it was parked (frames may have been in flight then); 0 when it was not
    parked (a connection taken over: when it broke is unknown)."""
    if not claim.parked_until:
        return 0
    parked_at = claim.parked_until - info.recovery
    return int((parked_at - IN_FLIGHT - 2 * get_settings().heartbeat_interval) * 1000)


def read_budget(handler: Any) -> int:
    """The most bytes one resume of ``handler``'s sockets reads from the journal:
    ``recovery_max_read``, else :data:`READ_FACTOR` times ``recovery_max_bytes``."""
    budget = getattr(handler, "recovery_max_read", None)
    return int(budget) if budget is not None else READ_FACTOR * int(handler.recovery_max_bytes)


async def _replay(
    handler: Any, old: ConnectionInfo, info: ConnectionInfo, offset: str, sure_until_ms: int
) -> tuple[list[str], str, int] | Failure:
    """The frames to replay after ``offset``, or why there can be none.

    What is read, and so what a resume costs, does not depend on how old
    ``offset`` is: the read starts :data:`REORDER_MARGIN_MS` before the
    latest of the client's offset, the session's start point (``old.since``,
    moved on by each resume) and, for a parked socket, ``sure_until_ms``
    (what it surely had, see :func:`_sure_until`), never before the start
    point; and it stops at :func:`read_budget` bytes (then: ``overflow``).
    A gap the journal lost is refused before anything is read. Every replayed
    byte counts toward ``recovery_max_bytes``, the margin's too."""
    since = key_of(old.since) if old.since else (0, 0)
    start = max(key_of(offset), since)
    bound = max(start, (sure_until_ms, 0))
    after = max(key_of(minus_ms(f"{bound[0]}-{bound[1]}", REORDER_MARGIN_MS)), since)
    read = await get_journal().read(
        info.handler,
        f"{after[0]}-{after[1]}",
        lost_after=f"{bound[0]}-{bound[1]}",
        max_bytes=read_budget(handler),
    )
    bump(Count.JOURNAL_READ, len(read.entries))
    bump(Count.JOURNAL_READ_BYTES, sum(entry.weight for entry in read.entries))
    if start > key_of(read.last):  # an offset the journal never gave out
        return "refused"
    if read.lost:
        return "lost"
    if not read.complete:
        return "overflow"
    frames: list[str] = []
    missed = size = 0
    most, most_bytes = handler.recovery_max_messages, handler.recovery_max_bytes
    for entry in read.entries:
        at = key_of(entry.offset)
        if at <= since or not entry.addressed_to(info):
            continue
        size += entry.size
        if at > start:
            missed += 1
        if missed > most or len(frames) >= 2 * most or size > most_bytes:
            return "overflow"
        frames.append(protocol.with_offset(entry.text, entry.offset))
    return frames, max(read.last, offset, key=key_of), missed


async def _release(info: ConnectionInfo, node_id: str) -> None:
    """A claimed session that cannot be resumed ends: its departure is announced."""
    try:
        await presence.release(info.handler, info.id, node_id, info.resume_key)
    except RegistryUnavailable as exc:
        logger.warning("socket %s: releasing a failed resume failed (%s)", info.id, exc)


def _refused(reason: Failure) -> Refused:
    bump(
        {
            "expired": Count.RESUME_EXPIRED,
            "overflow": Count.RESUME_OVERFLOWED,
            "lost": Count.RESUME_LOST,
        }.get(reason, Count.RESUME_REFUSED)
    )
    return Refused(reason)


def reset() -> None:
    """Forget what this process learnt (tests)."""
    _hints.clear()
    _trimmed.clear()
    _enabled.clear()
    _address_buckets.clear()


_state.owns(__name__, reset)
