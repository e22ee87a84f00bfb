"""Topic history: the recent publications of each topic, with their positions.

A position is an ``offset`` (an integer, 1 for a topic's first publication,
growing by one per publication) within an ``epoch`` (a random string). The
epoch changes when the history is lost (a new process for the in-memory
store; a flushed or restarted Redis, or a deleted history key, for the Redis
store, :mod:`wsmanager.topics._redis`); offsets start again from 1 then.

Guarantees of every store:

* :meth:`History.append` gives each publication of a topic the offset after
  the previous one; the history keeps at most ``size`` publications per
  topic (the oldest go first) and none older than ``ttl`` seconds when
  read (``ttl`` None: no age bound).
* :meth:`History.read` with ``since`` answers ``recovered`` True only when
  ``since`` is of the current epoch and every publication after it is still
  kept: then it returns them (up to ``limit``, oldest first). Otherwise
  ``recovered`` is False and nothing is returned: a reader never mistakes a
  gap for an empty one.
* The position a read returns is the topic's latest offset at the time of
  the read; a publication appended after the read has a greater offset.

Non-guarantee: the in-memory store is this process's only (one process, or
tests); the Redis store is shared by every process using the registry.
"""

from __future__ import annotations

import abc
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wsmanager_client.protocol import dumps

__all__ = [
    "History",
    "InMemoryHistory",
    "Position",
    "Publication",
    "Read",
    "new_epoch",
    "publication_frame",
]

#: How every publication frame starts (the subscription gate looks for it).
FRAME_PREFIX = '{"jsonrpc":"2.0","method":"rpc.publication","params":{"topic":'


def new_epoch() -> str:
    """A fresh random epoch (16 hex digits)."""
    return secrets.token_hex(8)


def publication_frame(topic: str, offset: int, epoch: str, event: str, data_json: str) -> str:
    """The ``rpc.publication`` notification, encoded (``data_json``: the data's JSON text)."""
    return (
        f'{FRAME_PREFIX}{dumps(topic)},"offset":{offset},"epoch":{dumps(epoch)},'
        f'"event":{dumps(event)},"data":{data_json}}}}}'
    )


@dataclass(frozen=True)
class Position:
    """Where a topic's history stands: its latest offset in its epoch."""

    offset: int
    epoch: str

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "epoch": self.epoch}


@dataclass(frozen=True)
class Publication:
    """One publication as the history keeps it (``data_json``: the data's JSON text)."""

    topic: str
    offset: int
    epoch: str
    event: str
    data_json: str
    #: Unix time of the append (the publishing process's clock).
    at: float = 0.0

    def frame(self) -> str:
        """Its ``rpc.publication`` frame."""
        return publication_frame(self.topic, self.offset, self.epoch, self.event, self.data_json)

    def to_json(self) -> dict[str, Any]:
        """The frame's params, data decoded (for ``manager.history``)."""
        return {
            "topic": self.topic,
            "offset": self.offset,
            "epoch": self.epoch,
            "event": self.event,
            "data": json.loads(self.data_json),
        }


@dataclass(frozen=True)
class Read:
    """What a history read found."""

    position: Position
    publications: list[Publication] = field(default_factory=list)
    #: With ``since``: every publication after it is kept (and, up to the limit, returned).
    recovered: bool = False
    #: More publications after the last one returned were kept than ``limit`` allowed.
    more: bool = False


class History(abc.ABC):
    """Where topics' publications are kept. Keys are (handler name, topic name)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    @abc.abstractmethod
    async def append(
        self, handler: str, topic: str, event: str, data_json: str, *, size: int, ttl: float | None
    ) -> Publication:
        """Keep one publication; it, with its offset and epoch."""

    @abc.abstractmethod
    async def read(
        self,
        handler: str,
        topic: str,
        since: Position | None,
        *,
        limit: int,
        ttl: float | None,
    ) -> Read:
        """With ``since``: the publications after it (oldest first, at most ``limit``),
        if none is lost (else ``recovered`` False and none). Without: the latest
        ``limit`` publications (oldest first; 0: just the position)."""


class _Topic:
    __slots__ = ("entries", "epoch", "last")

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self.last = 0
        self.entries: deque[Publication] = deque()

    def trim(self, size: int, cutoff: float | None) -> None:
        entries = self.entries
        while len(entries) > size:
            entries.popleft()
        if cutoff is not None:
            while entries and entries[0].at < cutoff:
                entries.popleft()


class InMemoryHistory(History):
    """The history in this process's memory (the default, with the in-memory registry).

    It keeps the topics most recently appended to or read, at most
    ``max_topics`` of them (10,000 by default): the least recently used one
    is forgotten past that, its history with it, and a later use of it starts
    a new epoch (its clients get ``recovered: false`` and refetch).
    """

    def __init__(self, clock: Callable[[], float] = time.time, max_topics: int = 10_000) -> None:
        super().__init__(clock)
        self.max_topics = max_topics
        self._topics: OrderedDict[tuple[str, str], _Topic] = OrderedDict()

    def _topic(self, key: tuple[str, str]) -> _Topic:
        found = self._topics.get(key)
        if found is None:
            found = self._topics[key] = _Topic()
            while len(self._topics) > self.max_topics:
                self._topics.popitem(last=False)
        else:
            self._topics.move_to_end(key)
        return found

    async def append(
        self, handler: str, topic: str, event: str, data_json: str, *, size: int, ttl: float | None
    ) -> Publication:
        kept = self._topic((handler, topic))
        now = self.clock()
        kept.last += 1
        publication = Publication(topic, kept.last, kept.epoch, event, data_json, now)
        kept.entries.append(publication)
        kept.trim(size, None if ttl is None else now - ttl)
        return publication

    async def read(
        self, handler: str, topic: str, since: Position | None, *, limit: int, ttl: float | None
    ) -> Read:
        kept = self._topic((handler, topic))
        if ttl is not None:
            kept.trim(len(kept.entries), self.clock() - ttl)
        position = Position(kept.last, kept.epoch)
        entries = kept.entries
        if since is None:
            latest = list(entries)[-limit:] if limit > 0 else []
            return Read(position, latest, False, len(entries) > len(latest))
        first = entries[0].offset if entries else kept.last + 1
        if since.epoch != kept.epoch or since.offset > kept.last or since.offset + 1 < first:
            return Read(position)
        after = [p for p in entries if p.offset > since.offset]
        return Read(position, after[:limit], True, len(after) > limit)

    def forget(self, handler: str, topic: str) -> None:
        """Lose a topic's history (tests: what a lost store looks like)."""
        self._topics.pop((handler, topic), None)

    def counts(self) -> Mapping[tuple[str, str], int]:
        return {key: len(kept.entries) for key, kept in self._topics.items()}
