"""Connection recovery on the client's side, without I/O: the token, the offsets, the decision.

A server that offers recovery gives each socket a resume token in
``rpc.connected`` and an ``offset`` on every notification it journals
(docs/protocol.md). :class:`Recovery` keeps what the client needs to resume
after an abrupt drop and to drop the notifications the server replays twice:

* the token and the window of the latest ``rpc.connected``;
* ``highest``, the greatest offset seen, sent back as ``wsm_offset``;
* the offsets seen in this session (at most ``limit``, the oldest forgotten
  first): a notification whose offset is among them is a duplicate.

The next attempt asks to resume (:meth:`Recovery.url_for` adds
``wsm_resume`` and ``wsm_offset`` to the URL) only after a drop with code
1001, 1006, 1011 or 1012 of a connection that got its ``rpc.connected``, while
the client holds a token, and less than ``window`` seconds after the drop
(the clock is a parameter, so that tests can move it). Never after the
client's own close, after any other code (4409, "resumed elsewhere", among
them), or once the window has passed.

Offsets are ``"<ms>-<seq>"`` strings, compared as the pair of integers.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from .encodings import loads

__all__ = [
    "OFFSET_PARAM",
    "RESUMABLE_CODES",
    "RESUME_PARAM",
    "SEEN_LIMIT",
    "Offer",
    "Offset",
    "Outcome",
    "Recovery",
    "SeenOffsets",
    "format_offset",
    "frame_offsets",
    "packed_offsets",
    "parse_offer",
    "parse_offset",
    "resume_url",
]

RESUME_PARAM: Final = "wsm_resume"
OFFSET_PARAM: Final = "wsm_offset"
RESUMABLE_CODES: Final = frozenset({1001, 1006, 1011, 1012})
SEEN_LIMIT: Final = 10_000

Offset = tuple[int, int]

# At most 20 digits each: a millisecond clock and a sequence number, never a 4,000-digit int.
_OFFSET: Final = re.compile(r"([0-9]{1,20})-([0-9]{1,20})", re.ASCII)


def parse_offset(value: Any) -> Offset | None:
    """``"1733100000000-3"`` as ``(1733100000000, 3)``; anything else (wrong type, bad text) ``None``."""
    if not isinstance(value, str):
        return None
    match = _OFFSET.fullmatch(value)
    if match is None:
        return None
    return int(match[1]), int(match[2])


def format_offset(offset: Offset) -> str:
    return f"{offset[0]}-{offset[1]}"


def resume_url(url: str, token: str, offset: Offset) -> str:
    """``url`` with ``wsm_resume=<token>&wsm_offset=<offset>`` at the end of its query.

    The app's own query params are kept as they are written (order and
    encoding); earlier ``wsm_resume``/``wsm_offset`` params are replaced.
    """
    parts = urlsplit(url)
    kept = [
        item
        for item in parts.query.split("&")
        if item and unquote_plus(item.partition("=")[0]) not in (RESUME_PARAM, OFFSET_PARAM)
    ]
    kept.append(f"{RESUME_PARAM}={quote(token, safe='')}")
    kept.append(f"{OFFSET_PARAM}={format_offset(offset)}")
    return urlunsplit(parts._replace(query="&".join(kept)))


@dataclass(frozen=True, slots=True)
class Offer:
    """The ``recovery`` member of ``rpc.connected``: what this socket may resume with."""

    token: str
    offset: Offset
    window: float


def parse_offer(params: Any) -> Offer | None:
    """The offer in ``rpc.connected``'s params, or ``None`` (none, or not well formed: no recovery)."""
    recovery = params.get("recovery") if isinstance(params, dict) else None
    if not isinstance(recovery, dict):
        return None
    token, window = recovery.get("token"), recovery.get("window")
    offset = parse_offset(recovery.get("offset"))
    if not isinstance(token, str) or not token or offset is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int | float) or not math.isfinite(window):
        return None
    if window <= 0:
        return None
    return Offer(token, offset, float(window))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a resume the client asked for (or would have asked for)."""

    recovered: bool
    replayed: int = 0
    reason: str = ""


class SeenOffsets:
    """A set of offsets that keeps the ``limit`` latest added and forgets older ones (O(1) each)."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, not {limit!r}")
        self.limit = limit
        self._order: deque[Offset] = deque()
        self._members: set[Offset] = set()

    def add(self, offset: Offset) -> bool:
        """Add ``offset``; false (and nothing changes) when it is already in."""
        if offset in self._members:
            return False
        self._members.add(offset)
        self._order.append(offset)
        if len(self._order) > self.limit:
            self._members.discard(self._order.popleft())
        return True

    def clear(self) -> None:
        self._order.clear()
        self._members.clear()

    def __contains__(self, offset: object) -> bool:
        return offset in self._members

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Offset]:
        return iter(self._order)


# A wsmanager server writes the offset as the last member of a compact object. Anchored at
# the end and right after an unescaped quote, it cannot match inside a string or a nested object.
_TAIL_OFFSET: Final = re.compile(r',"offset":"([0-9]{1,20}-[0-9]{1,20})"\}\Z', re.ASCII)
_TAIL: Final = 64


def frame_offsets(text: str) -> list[Any]:
    """The ``offset`` member of each object of a frame (one per batch member), ``None`` where absent.

    A second look at a frame the protocol module has already decoded (its
    items keep no extension member): a look at the end of a single object
    as a wsmanager server writes it, else a second parse when the text
    contains ``"offset"`` at all. Text that is not JSON gives no offsets.
    """
    if text.startswith("{"):
        match = _TAIL_OFFSET.search(text, max(0, len(text) - _TAIL))
        if match is not None:
            return [match[1]]
    if '"offset"' not in text:
        return []
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return []
    return _offsets_of(value)


def packed_offsets(data: bytes) -> list[Any]:
    """:func:`frame_offsets` of a MessagePack frame (one that :func:`.encodings.unpack`
    accepted already, so its size and depth are within the limits)."""
    if b"offset" not in data:
        return []
    try:
        value = loads(data)
    except ValueError:
        return []
    return _offsets_of(value)


def _offsets_of(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [item.get("offset") if isinstance(item, dict) else None for item in items]


class Recovery:
    """The client's recovery state across the connections of one session (see the module's doc)."""

    def __init__(
        self, *, enabled: bool = True, limit: int = SEEN_LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = enabled
        self.clock = clock
        self.seen = SeenOffsets(limit)
        self.token: str | None = None
        self.window = 0.0
        self.highest: Offset | None = None
        self._live = False  # the current connection got its rpc.connected
        self._dropped_at: float | None = None  # a resumable drop happened then
        self._asked = False  # the current attempt's URL asks to resume
        self._expired = False  # a resumable drop outlived its window before an attempt could resume

    @property
    def active(self) -> bool:
        """Whether the current session offers recovery (notifications carry offsets to track)."""
        return self.enabled and self.token is not None

    def reset(self) -> None:
        """Forget the session: the client closed, or starts a new session."""
        self.token, self.window, self.highest = None, 0.0, None
        self.seen.clear()
        self._live = self._asked = self._expired = False
        self._dropped_at = None

    # --- the decision ----------------------------------------------------------------
    def lost(self, code: int) -> None:
        """A connection ended with ``code`` (an attempt that never got ``rpc.connected`` changes nothing)."""
        if not self._live:
            return
        self._live = False
        if self.token is not None and code in RESUMABLE_CODES:
            self._dropped_at = self.clock()
        else:
            self._forget_token()

    def resume_with(self) -> tuple[str, Offset] | None:
        """The token and offset the next attempt resumes with, or ``None`` (a fresh socket)."""
        if not self.enabled or self.token is None or self.highest is None or self._dropped_at is None:
            return None
        if self.clock() - self._dropped_at < self.window:
            return self.token, self.highest
        self._forget_token()
        self._expired = True
        return None

    def url_for(self, url: str) -> str:
        """The URL of the next attempt: ``url``, with the resume params when it resumes."""
        resume = self.resume_with()
        self._asked = resume is not None
        return url if resume is None else resume_url(url, *resume)

    def _forget_token(self) -> None:
        self.token, self._dropped_at = None, None

    # --- rpc.connected -------------------------------------------------------------------
    def hello(self, params: Any) -> Outcome | None:
        """Take ``rpc.connected``'s params; say what became of a resume, ``None`` for a plain start.

        A resume the client asked for is ``recovered`` (seen offsets kept) or
        failed with the server's reason (``"refused"`` when it gave none), or
        ``"unsupported"`` when the server said nothing of it; a drop that outlived the window fails as
        ``"expired"``. Failures start over from the new offer's offset.
        """
        asked, expired = self._asked, self._expired
        self._asked = self._expired = False
        self._live, self._dropped_at = True, None
        offer = parse_offer(params) if self.enabled else None
        self.token = offer.token if offer is not None else None
        self.window = offer.window if offer is not None else 0.0
        recovered = params.get("recovered") if isinstance(params, dict) else None
        if asked and recovered is True:
            replayed = params.get("replayed")
            count = replayed if isinstance(replayed, int) and not isinstance(replayed, bool) else 0
            if offer is not None and (self.highest is None or offer.offset > self.highest):
                self.highest = offer.offset
            return Outcome(True, max(count, 0))
        self.seen.clear()
        self.highest = offer.offset if offer is not None else None
        if asked:
            reason = params.get("recovery_failed") if isinstance(params, dict) else None
            if not isinstance(reason, str) or not reason:
                reason = "refused" if recovered is False else "unsupported"
            return Outcome(False, reason=reason)
        if expired:
            return Outcome(False, reason="expired")
        return None

    # --- notifications ---------------------------------------------------------------------
    def accept(self, raw_offset: Any) -> bool:
        """Whether a notification with this ``offset`` member is delivered (false: a duplicate).

        A notification without a well-formed offset is delivered and not tracked.
        """
        offset = parse_offset(raw_offset)
        if offset is None:
            return True
        if not self.seen.add(offset):
            return False
        if self.highest is None or offset > self.highest:
            self.highest = offset
        return True
