"""``wsmanager.node._link``: a hop to another node's channel is True or counted False."""

from __future__ import annotations

from typing import Any

from channels.exceptions import ChannelFull

from wsmanager.node._link import Link
from wsmanager.observe import _counters as counters


class Layer:
    """A layer that records sends and answers as told."""

    def __init__(self, refusal: Exception | None = None) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.refusal = refusal

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        if self.refusal is not None:
            raise self.refusal
        self.sent.append((channel, message))


class Counting(Layer):
    """A layer that says how many receivers got a message (as pub/sub can)."""

    def __init__(self, receivers: int) -> None:
        super().__init__()
        self.receivers = receivers

    async def deliver(self, channel: str, message: dict[str, Any]) -> int:
        self.sent.append((channel, message))
        return self.receivers


async def test_a_hop_the_layer_took_is_true_and_counts_nothing() -> None:
    layer = Layer()
    assert await Link(layer).send("n1", {"type": "x"}) is True
    assert layer.sent == [("n1", {"type": "x"})]
    assert counters.stats() == {}


async def test_refusals_are_false_and_counted_by_their_reason() -> None:
    assert await Link(None).send("n1", {"type": "x"}) is False
    assert await Link(Layer(ChannelFull())).send("n1", {"type": "x"}) is False
    assert await Link(Layer(ConnectionError("down"))).send("n1", {"type": "x"}) is False
    assert counters.stats() == {"dropped_no_layer": 1, "dropped_channel_full": 1, "dropped_layer_error": 1}


async def test_a_layer_that_counts_receivers_is_asked_and_nobody_is_a_drop() -> None:
    """deliver() is used instead of send(); zero receivers is a refused hop."""
    reached, nobody = Counting(1), Counting(0)
    assert await Link(reached).send("n1", {"type": "x"}) is True
    assert await Link(nobody).send("n2", {"type": "x"}) is False
    assert reached.sent == [("n1", {"type": "x"})] and nobody.sent == [("n2", {"type": "x"})]
    assert counters.stats() == {"dropped_no_receiver": 1}
