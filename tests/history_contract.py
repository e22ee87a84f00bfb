"""The contract every topic history store keeps (wsmanager.topics._history), as a reusable
test class: subclass :class:`HistoryContract` in a ``test_*`` module whose ``store``
fixture yields a fresh store on the ``clock`` fixture's :class:`Clock`."""

from __future__ import annotations

import pytest

from wsmanager.topics import History, Position


class Clock:
    """A clock the test moves by hand (Unix seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def publish(
    store: History, n: int, topic: str = "t", *, size: int = 100, ttl: float | None = None
) -> None:
    for i in range(n):
        await store.append("h", topic, "e", f'{{"i":{i}}}', size=size, ttl=ttl)


class HistoryContract:
    async def test_offsets_start_at_one_and_grow_by_one_per_topic(self, store: History) -> None:
        first = await store.append("h", "a", "created", '{"id":1}', size=10, ttl=None)
        second = await store.append("h", "a", "updated", '{"id":1}', size=10, ttl=None)
        other = await store.append("h", "b", "created", "null", size=10, ttl=None)
        assert (first.offset, second.offset, other.offset) == (1, 2, 1)
        assert first.epoch == second.epoch
        assert other.epoch != first.epoch  # each topic its own epoch

    async def test_a_fresh_topic_reads_as_offset_zero(self, store: History) -> None:
        read = await store.read("h", "never", None, limit=0, ttl=None)
        assert read.position.offset == 0 and read.publications == []
        again = await store.read("h", "never", None, limit=0, ttl=None)
        assert again.position == read.position  # the epoch is stable while nothing is lost

    async def test_since_returns_the_later_publications_in_order(self, store: History) -> None:
        first = await store.append("h", "t", "e", "0", size=100, ttl=None)
        await publish(store, 5)
        read = await store.read("h", "t", Position(2, first.epoch), limit=100, ttl=None)
        assert read.recovered and not read.more
        assert [p.offset for p in read.publications] == [3, 4, 5, 6]
        assert [p.data_json for p in read.publications] == ['{"i":1}', '{"i":2}', '{"i":3}', '{"i":4}']
        assert read.position == Position(6, first.epoch)

    async def test_since_the_last_offset_is_recovered_and_empty(self, store: History) -> None:
        await publish(store, 3)
        position = (await store.read("h", "t", None, limit=0, ttl=None)).position
        read = await store.read("h", "t", position, limit=100, ttl=None)
        assert read.recovered and read.publications == []

    async def test_since_zero_of_the_epoch_replays_everything_kept(self, store: History) -> None:
        empty = (await store.read("h", "t", None, limit=0, ttl=None)).position
        await publish(store, 3)
        read = await store.read("h", "t", Position(0, empty.epoch), limit=100, ttl=None)
        assert read.recovered and [p.offset for p in read.publications] == [1, 2, 3]

    async def test_count_trimming_makes_an_older_since_unrecovered(self, store: History) -> None:
        epoch = (await store.read("h", "t", None, limit=0, ttl=None)).position.epoch
        await publish(store, 5, size=3)
        kept = await store.read("h", "t", Position(2, epoch), limit=100, ttl=None)
        assert kept.recovered and [p.offset for p in kept.publications] == [3, 4, 5]
        lost = await store.read("h", "t", Position(1, epoch), limit=100, ttl=None)
        assert not lost.recovered and lost.publications == []
        assert lost.position == Position(5, epoch)

    async def test_age_trimming_makes_an_older_since_unrecovered(self, store: History, clock: Clock) -> None:
        epoch = (await store.read("h", "t", None, limit=0, ttl=None)).position.epoch
        await publish(store, 2, ttl=60)
        clock.now += 61
        await publish(store, 1, ttl=60)
        assert not (await store.read("h", "t", Position(1, epoch), limit=10, ttl=60)).recovered
        kept = await store.read("h", "t", Position(2, epoch), limit=10, ttl=60)
        assert kept.recovered and [p.offset for p in kept.publications] == [3]
        clock.now += 61  # the read trims by age too, with no publication meanwhile
        assert not (await store.read("h", "t", Position(2, epoch), limit=10, ttl=60)).recovered
        assert (await store.read("h", "t", Position(3, epoch), limit=10, ttl=60)).recovered

    async def test_another_epoch_or_a_future_offset_is_unrecovered(self, store: History) -> None:
        await publish(store, 3)
        epoch = (await store.read("h", "t", None, limit=0, ttl=None)).position.epoch
        assert not (await store.read("h", "t", Position(1, "elsewhere"), limit=10, ttl=None)).recovered
        assert not (await store.read("h", "t", Position(4, epoch), limit=10, ttl=None)).recovered

    async def test_limit_bounds_a_read_and_says_more(self, store: History) -> None:
        await publish(store, 5)
        epoch = (await store.read("h", "t", None, limit=0, ttl=None)).position.epoch
        read = await store.read("h", "t", Position(0, epoch), limit=2, ttl=None)
        assert read.more and [p.offset for p in read.publications] == [1, 2]
        latest = await store.read("h", "t", None, limit=2, ttl=None)
        assert latest.more and [p.offset for p in latest.publications] == [4, 5]

    async def test_size_zero_keeps_nothing_but_the_position(self, store: History) -> None:
        await publish(store, 3, size=0)
        read = await store.read("h", "t", None, limit=10, ttl=None)
        assert read.position.offset == 3 and read.publications == []
        assert (await store.read("h", "t", Position(3, read.position.epoch), limit=10, ttl=None)).recovered
        assert not (
            await store.read("h", "t", Position(2, read.position.epoch), limit=10, ttl=None)
        ).recovered

    async def test_handlers_do_not_share_topics(self, store: History) -> None:
        await store.append("h1", "t", "e", "1", size=10, ttl=None)
        read = await store.read("h2", "t", None, limit=10, ttl=None)
        assert read.position.offset == 0 and read.publications == []

    async def test_frames_carry_the_position_and_the_data_as_given(self, store: History) -> None:
        published = await store.append("h", "t", "créé", '{"x":"é\\u2028"}', size=10, ttl=None)
        (read,) = (await store.read("h", "t", None, limit=1, ttl=None)).publications
        assert read.frame() == published.frame()
        assert published.to_json() == {
            "topic": "t",
            "offset": 1,
            "epoch": published.epoch,
            "event": "créé",
            "data": {"x": "é\u2028"},
        }
