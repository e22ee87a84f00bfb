"""Topics on the client side: subscriptions, their positions, and which publications to deliver.

No I/O here: :class:`Subscriptions` keeps a client's :class:`Subscription`
objects by topic and decides, for each ``rpc.publication`` (docs/protocol.md,
"Topics"), whether it reaches the subscription's callback; the session
(:mod:`.session`) sends ``rpc.subscribe`` and ``rpc.unsubscribe`` and calls the
callbacks.

Guarantees:

* A publication reaches the callback at most once and in offset order within
  an epoch: one whose offset is at or below the subscription's position (the
  last delivered, or the subscribe answer's offset) is dropped and counted
  (``Stats.publications_duplicate``). Offsets grow by one: one that skips
  ahead while subscribed is held, and the session subscribes again from the
  position at once, so that the missing ones (late, or replayed) go first.
  One for a topic with no subscription (unsubscribed meanwhile) or malformed
  is dropped and counted (``Stats.publications_ignored``).
* After every new connection (a resumed session included) each subscription
  is sent again with its position as ``since``: the server replays what it
  still has, and what was delivered already is dropped.
* When what was missed cannot be replayed (the answer says ``recovered:
  false`` to a ``since``, or a publication comes from a new epoch while
  subscribed), :class:`Unrecovered` goes to ``on_unrecovered``: the
  application refetches the state.

Non-guarantees: positions live in memory only (a new process starts from
the ``since`` it is given); a subscription refused again after a
reconnection (say, the user lost the right) ends, and ``on_error`` is told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Delivery",
    "Position",
    "Publication",
    "Subscription",
    "Subscriptions",
    "Unrecovered",
    "parse_position",
]


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a topic's history: the offset of the last publication seen, in its epoch."""

    offset: int
    epoch: str

    def as_params(self) -> dict[str, Any]:
        """The ``since`` member of ``rpc.subscribe``."""
        return {"offset": self.offset, "epoch": self.epoch}


@dataclass(frozen=True, slots=True)
class Publication:
    """One ``rpc.publication``: ``event`` happened on ``topic``, with ``data``."""

    topic: str
    offset: int
    epoch: str
    event: str
    data: Any


@dataclass(frozen=True, slots=True)
class Unrecovered:
    """Publications after ``since`` may be lost: refetch the topic's state.

    ``reason`` is ``"history"`` (the server answered ``recovered: false``: its
    history no longer reaches back to ``since``, or ``since`` is of another
    epoch) or ``"epoch"`` (a publication came from a new epoch while subscribed).
    """

    topic: str
    since: Position
    position: Position | None
    reason: Literal["history", "epoch"]


@dataclass(slots=True)
class Delivery:
    """What one publication or answer leads to: the publications to hand over, in order, what
    to report, and whether a gap remains (then subscribe again from the position)."""

    ready: list[Publication] = field(default_factory=list)
    unrecovered: Unrecovered | None = None
    repair: bool = False


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_position(value: Any) -> Position | None:
    """A :class:`Position` from one, or from ``{"offset": int >= 0, "epoch": str}``; else ``None``."""
    if isinstance(value, Position):
        return value
    if isinstance(value, Mapping) and _is_offset(value.get("offset")) and isinstance(value.get("epoch"), str):
        return Position(value["offset"], value["epoch"])
    return None


PublicationCallback = Callable[[Publication], Any]
UnrecoveredCallback = Callable[[Unrecovered], Any]
ErrorCallback = Callable[[BaseException], Any]


class Subscription:
    """One topic a client is subscribed to; made by ``await client.subscribe(...)``."""

    def __init__(
        self,
        topic: str,
        on_publication: PublicationCallback,
        *,
        since: Position | None,
        on_unrecovered: UnrecoveredCallback | None,
        on_error: ErrorCallback | None,
        unsubscribe: Callable[[Subscription], Awaitable[None]],
    ) -> None:
        self.topic = topic
        self.on_publication = on_publication
        self.on_unrecovered = on_unrecovered
        self.on_error = on_error
        self._since = since
        self._unsubscribe = unsubscribe
        self._position: Position | None = None
        self._state: Any = None
        self.active = False  # the server has it on the current connection
        self.closed = False
        self.subscribed_once = False
        self.duplicates = 0
        self.attempt = 0  # the rpc.subscribe in flight, by number (0: none); older answers are ignored
        self.first: asyncio.Future[Subscription] = asyncio.get_running_loop().create_future()
        self.first.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.tail: asyncio.Future[Any] | None = None  # the last coroutine callback: the next waits for it
        self.held: dict[int, Publication] = {}  # publications after a gap, until it is filled

    @property
    def position(self) -> Position | None:
        """The last publication delivered (or the latest subscribe answer's offset), or ``None``."""
        return self._position

    @property
    def state(self) -> Any:
        """The topic's initial state from the latest subscribe answer (``None`` when it has none)."""
        return self._state

    def start_from(self) -> Position | None:
        """Where a (re)subscription starts: the position, else the ``since`` given."""
        return self._position if self._position is not None else self._since

    async def unsubscribe(self) -> None:
        """Stop: no publication reaches the callback after this call; the server is told when connected.

        Never raises for the connection's sake: a server that lost the socket
        dropped the subscription with it.
        """
        await self._unsubscribe(self)

    def deliver(self, publication: Publication) -> Delivery:
        """Take one publication: new ones become the position (with the held ones they free)."""
        last = self._position
        same_epoch = last is not None and last.epoch == publication.epoch
        if last is not None and same_epoch and publication.offset <= last.offset:
            self.duplicates += 1
            return Delivery()
        if last is not None and same_epoch and self.active and publication.offset > last.offset + 1:
            if publication.offset in self.held:
                self.duplicates += 1
            self.held[publication.offset] = publication
            return Delivery(repair=True)
        delivery = Delivery([publication])
        self._position = Position(publication.offset, publication.epoch)
        if last is not None and not same_epoch and self.active:
            delivery.unrecovered = Unrecovered(self.topic, last, self._position, "epoch")
        delivery.repair = self._release(delivery.ready)
        return delivery

    def _release(self, ready: list[Publication]) -> bool:
        """Move the held publications that follow the position to ``ready``; true when a gap remains."""
        position = self._position
        for offset, held in list(self.held.items()):
            if position is None or held.epoch != position.epoch or offset <= position.offset:
                del self.held[offset]  # delivered meanwhile, or of an epoch that is gone
                self.duplicates += 1
        while position is not None and (following := self.held.pop(position.offset + 1, None)) is not None:
            ready.append(following)
            position = self._position = Position(following.offset, following.epoch)
        return bool(self.held)

    def accepted(self, result: Mapping[str, Any], since: Position | None) -> Delivery:
        """Take the answer to an ``rpc.subscribe`` that asked for ``since``."""
        answer = Position(result["offset"], result["epoch"])
        last = self._position
        if last is None or last.epoch != answer.epoch or answer.offset > last.offset:
            self._position = answer
        self._state = result.get("state")
        self.active = True
        self.subscribed_once = True
        delivery = Delivery()
        if since is not None and result.get("recovered") is not True:
            delivery.unrecovered = Unrecovered(self.topic, since, self._position, "history")
        delivery.repair = self._release(delivery.ready)
        return delivery

    def __repr__(self) -> str:
        status = "closed" if self.closed else "active" if self.active else "pending"
        return f"<Subscription {self.topic!r} {status} at {self._position}>"


class Subscriptions:
    """A client's subscriptions by topic."""

    def __init__(self) -> None:
        self._by_topic: dict[str, Subscription] = {}

    def __iter__(self) -> Iterator[Subscription]:
        return iter(list(self._by_topic.values()))

    def __len__(self) -> int:
        return len(self._by_topic)

    def get(self, topic: str) -> Subscription | None:
        return self._by_topic.get(topic)

    def add(self, subscription: Subscription) -> None:
        if subscription.topic in self._by_topic:
            raise ValueError(f"already subscribed to {subscription.topic!r}")
        self._by_topic[subscription.topic] = subscription

    def remove(self, subscription: Subscription) -> bool:
        """Close ``subscription``; false when it was closed already."""
        if subscription.closed:
            return False
        subscription.closed = True
        subscription.active = False
        subscription.attempt = 0
        if self._by_topic.get(subscription.topic) is subscription:
            del self._by_topic[subscription.topic]
        return True

    def lost(self) -> None:
        """The connection is gone: nothing is subscribed on the server, no answer will come."""
        for subscription in self._by_topic.values():
            subscription.active = False
            subscription.attempt = 0
            subscription.held.clear()  # the next subscribe replays them

    def route(self, params: Any) -> tuple[Subscription, Publication] | None:
        """The subscription and publication of an ``rpc.publication``'s params, or ``None``."""
        p = params if isinstance(params, dict) else {}
        topic = p.get("topic")
        subscription = self._by_topic.get(topic) if isinstance(topic, str) else None
        if subscription is None or not _is_offset(p.get("offset")) or not isinstance(p.get("epoch"), str):
            return None
        event = p.get("event")
        kind = event if isinstance(event, str) else ""
        return subscription, Publication(subscription.topic, p["offset"], p["epoch"], kind, p.get("data"))
