"""The journal: the recent notifications of a handler, kept so that a dropped
socket can get what it missed (connection recovery, :mod:`wsmanager._recovery`).

One entry per notification *sent*, not per recipient: a broadcast to a room
of 300 costs one append. An entry names its addressees the way the sender
did (a list of ids, a group, a user, or everybody, with ``exclude``), and
:meth:`Entry.addressed_to` decides, at replay time, whether a socket was one
of them.

Offsets are ``"<ms>-<seq>"`` strings (the form of Redis stream ids): the
wall-clock millisecond of the append and a sequence within it. They only
grow within one journal; compare them with :func:`key_of`, never as strings.

Guarantees:

* :meth:`Journal.append` returns an offset greater than every offset the
  journal returned before (per handler).
* :meth:`Journal.read` returns the entries after an offset in offset order,
  and says whether any entry after that offset was trimmed (``lost``): a
  reader never mistakes a trimmed gap for an empty one. A read is bounded
  by what it may weigh (``max_bytes``), never by how old its offset is,
  and a gap already lost costs no entry read.
* The journal is bounded: at most ``max_entries`` entries per handler (the
  oldest are trimmed first), and :meth:`Journal.trim` forgets entries older
  than a time.

Non-guarantees: group membership is not journaled. A group entry is
addressed to a socket that is in the group *when it reads the journal*
(see docs/protocol.md, "Connection recovery").

The in-memory journal is this process's; the Redis one
(:mod:`wsmanager.registry.redis._recovery`) is shared by every process of the
registry.
"""

from __future__ import annotations

import abc
import bisect
import itertools
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "ZERO",
    "Addressee",
    "Entry",
    "InMemoryJournal",
    "Journal",
    "Kind",
    "Read",
    "key_of",
    "minus_ms",
]

#: The offset before every entry.
ZERO = "0-0"

Kind = Literal["ids", "group", "user", "all"]


_OFFSET = re.compile(r"([0-9]{1,20})-([0-9]{1,20})", re.ASCII)


def key_of(offset: str) -> tuple[int, int]:
    """``"<ms>-<seq>"`` as a pair of integers, for comparing; ValueError if malformed.

    Only ASCII digits, at most 20 each (other Unicode digits, which ``int``
    would read, are malformed).
    """
    match = _OFFSET.fullmatch(offset)
    if match is None:
        raise ValueError(f"not an offset: {offset[:48]!r}")
    return int(match[1]), int(match[2])


def minus_ms(offset: str, ms: int) -> str:
    """The offset ``ms`` milliseconds before ``offset`` (never below :data:`ZERO`)."""
    at, _ = key_of(offset)
    return f"{max(0, at - ms)}-0"


class Addressee(Protocol):
    """What deciding "was this entry for that socket" needs to know of the socket."""

    @property
    def id(self) -> str: ...
    @property
    def groups(self) -> frozenset[str]: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def connected_at(self) -> float: ...


@dataclass(frozen=True)
class Entry:
    """One journaled notification: its offset, its addressees, its encoded text."""

    offset: str
    kind: Kind
    #: ``ids``: the socket ids; ``group``: (the group,); ``user``: (the user id,); ``all``: ().
    target: tuple[str, ...]
    text: str
    exclude: frozenset[str] = field(default_factory=frozenset)

    def addressed_to(self, sock: Addressee) -> bool:
        """Whether the sender addressed ``sock`` (group membership as of now, see the module)."""
        if sock.id in self.exclude:
            return False
        if self.kind == "ids":
            return sock.id in self.target
        if self.kind == "group":
            return self.target[0] in sock.groups
        if self.kind == "user":
            return sock.user_id is not None and sock.user_id == self.target[0]
        # "all": every socket open when it was sent.
        return key_of(self.offset)[0] >= int(sock.connected_at * 1000)

    @property
    def size(self) -> int:
        """The text's size in bytes (UTF-8)."""
        return len(self.text) if self.text.isascii() else len(self.text.encode("utf-8", "surrogatepass"))

    @property
    def weight(self) -> int:
        """What reading the entry costs, in bytes: its text and its addressees (as stored)."""
        names = self.target + tuple(self.exclude)
        return self.size + sum(len(name) + 3 for name in names) + 16


@dataclass(frozen=True)
class Read:
    """What :meth:`Journal.read` found after an offset."""

    entries: list[Entry]
    #: An entry after the offset read from was trimmed (or the journal restarted).
    lost: bool
    #: The journal's last offset when it was read (:data:`ZERO` if empty).
    last: str
    #: False when the read stopped at its byte budget: entries after these were not read.
    complete: bool = True


class Journal(abc.ABC):
    """Where a handler's notifications are kept for recovery."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries

    @abc.abstractmethod
    async def append(
        self, handler: str, kind: Kind, target: Iterable[str], text: str, exclude: Iterable[str] = ()
    ) -> str:
        """Keep one notification; its offset."""

    @abc.abstractmethod
    async def last(self, handler: str) -> str:
        """The greatest offset appended so far (:data:`ZERO` if none)."""

    @abc.abstractmethod
    async def read(
        self, handler: str, after: str, lost_after: str | None = None, max_bytes: int | None = None
    ) -> Read:
        """The entries after ``after``, oldest first (at most ``max_entries``).

        ``lost`` tells whether an entry after ``lost_after`` (default
        ``after``) was trimmed: then what is read is not the whole gap.
        When the journal has lost part of the gap already, nothing is read.
        With ``max_bytes``, the read stops once the entries read weigh that
        much (:attr:`Entry.weight`; the entry that crosses it is the last
        one read) and says so (``complete`` False): a reader never reads
        more than ``max_bytes`` plus one entry, however old ``after`` is.
        """

    @abc.abstractmethod
    async def trim(self, handler: str, before_ms: int) -> None:
        """Forget the entries appended before ``before_ms`` (Unix milliseconds)."""

    @abc.abstractmethod
    async def enable(self, handler: str, window: float) -> None:
        """Note that ``handler`` has recoverable sockets with a ``window`` (senders then
        journal, and keep entries that long); the largest window noted wins."""

    @abc.abstractmethod
    async def enabled(self, handler: str) -> float:
        """The largest window noted for ``handler`` recently; 0.0: none."""


class _Stream:
    __slots__ = ("entries", "keys", "last", "trimmed")

    def __init__(self) -> None:
        self.entries: deque[Entry] = deque()
        self.keys: deque[tuple[int, int]] = deque()  # key_of of each entry, in step
        self.last = (0, 0)
        self.trimmed = (0, 0)  # the greatest offset trimmed

    def pop_oldest(self) -> None:
        self.entries.popleft()
        self.trimmed = self.keys.popleft()


class InMemoryJournal(Journal):
    """A journal in this process's memory (with the in-memory registry)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        super().__init__(max_entries)
        self._streams: dict[str, _Stream] = {}
        self._enabled: dict[str, float] = {}

    def _stream(self, handler: str) -> _Stream:
        stream = self._streams.get(handler)
        if stream is None:
            stream = self._streams[handler] = _Stream()
        return stream

    async def append(
        self, handler: str, kind: Kind, target: Iterable[str], text: str, exclude: Iterable[str] = ()
    ) -> str:
        stream = self._stream(handler)
        ms = int(time.time() * 1000)
        last_ms, last_seq = stream.last
        stream.last = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        offset = f"{stream.last[0]}-{stream.last[1]}"
        stream.entries.append(Entry(offset, kind, tuple(target), text, frozenset(exclude)))
        stream.keys.append(stream.last)
        while len(stream.entries) > self.max_entries:
            stream.pop_oldest()
        return offset

    async def last(self, handler: str) -> str:
        ms, seq = self._stream(handler).last
        return f"{ms}-{seq}"

    async def read(
        self, handler: str, after: str, lost_after: str | None = None, max_bytes: int | None = None
    ) -> Read:
        stream = self._stream(handler)
        last = f"{stream.last[0]}-{stream.last[1]}"
        if stream.trimmed > key_of(lost_after if lost_after is not None else after):
            return Read([], True, last)
        first = bisect.bisect_right(stream.keys, key_of(after))
        entries: list[Entry] = []
        weight = 0
        for entry in itertools.islice(stream.entries, first, None):
            if max_bytes is not None and weight >= max_bytes:
                return Read(entries, False, last, complete=False)
            entries.append(entry)
            weight += entry.weight
        return Read(entries, False, last)

    async def trim(self, handler: str, before_ms: int) -> None:
        stream = self._stream(handler)
        while stream.keys and stream.keys[0][0] < before_ms:
            stream.pop_oldest()

    async def enable(self, handler: str, window: float) -> None:
        self._enabled[handler] = max(window, self._enabled.get(handler, 0.0))

    async def enabled(self, handler: str) -> float:
        return self._enabled.get(handler, 0.0)
