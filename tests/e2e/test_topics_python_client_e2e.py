"""The Python client's topics against the real demo (``/ws/live/`` and the task API) on two
processes of each server kind sharing Redis and one SQLite file (the site of
tests/e2e/test_topics_e2e.py): publications from both processes once and in order,
refusals with their codes, a new process of the client that comes back with its
position (the reload of a script), and a subscriber whose server process is SIGKILLed
resubscribing by itself on the other one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.client import running
from tests.e2e.test_topics_e2e import HISTORY, Site, create, live, position, redis_url, site
from tests.servers import server_process
from wsmanager_client import Client, Position, Publication, RemoteError, Unrecovered, connect

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

__all__ = ["redis_url", "site"]  # the fixtures, imported for pytest

FAST = {"reconnect_delay": 0.05, "reconnect_max_delay": 0.2, "heartbeat_interval": None, "timeout": 20}


class Got:
    """What a callback received, with a bounded wait for it."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self.changed.set()

    async def until(self, check: Callable[[list[Any]], bool], timeout: float = 20) -> list[Any]:
        async with asyncio.timeout(timeout):
            while not check(self.items):
                self.changed.clear()
                await self.changed.wait()
        return self.items

    def publications(self) -> list[Publication]:
        return [item for item in self.items if isinstance(item, Publication)]


async def test_changes_on_both_processes_arrive_once_and_in_order(site: Site) -> None:
    a, b = site.servers
    got = Got()
    since = await position(a)
    async with connect(live(a), **FAST) as client:
        sub = await client.subscribe("tasks", got, since=since, on_unrecovered=got)
        made = [await create(a if n % 2 else b, f"py {n}") for n in range(10)]
        await got.until(lambda items: len(items) >= len(made))
        published = got.publications()
        assert [p.data for p in published] == made
        assert [p.offset for p in published] == list(range(since["offset"] + 1, since["offset"] + 11))
        assert {p.event for p in published} == {"created"} and {p.epoch for p in published} == {
            since["epoch"]
        }
        assert not any(isinstance(item, Unrecovered) for item in got.items)
        assert sub.position == Position(published[-1].offset, since["epoch"])

        await sub.unsubscribe()
        assert client.subscriptions == {} and sub.closed
        last = sub.position
        later = await create(b, "after unsubscribe")
        # Subscribing again from the position replays what was published meanwhile, once.
        again = await client.subscribe("tasks", got, since=last, on_unrecovered=got)
        await got.until(lambda items: len(items) >= len(made) + 1)
        assert [p.data for p in got.publications()[len(made) :]] == [later]
        assert again.position is not None and again.position.offset == published[-1].offset + 1


async def test_refusals_raise_remote_errors_with_their_codes(site: Site) -> None:
    (ann, _), (bob, _) = site.users
    async with connect(live(site.servers[0]), **FAST) as client:
        for topic, code in (("no.such.topic", -32010), (f"user.{ann}", -32011), (f"user.{bob}", -32011)):
            with pytest.raises(RemoteError) as refused:
                await client.subscribe(topic, Got())
            assert refused.value.code == code, topic
        with pytest.raises(RemoteError) as refused:
            await client.subscribe("x" * 201, Got())
        assert refused.value.code == -32602
        assert client.subscriptions == {}


async def test_a_client_that_comes_back_with_its_position_gets_what_it_missed(site: Site) -> None:
    """A script keeps the position, stops, and starts again later: within the history it gets
    exactly what it missed; past it (HISTORY publications), on_unrecovered says refetch."""
    a, b = site.servers
    got = Got()
    async with connect(live(a), **FAST) as client:
        sub = await client.subscribe("tasks", got)
        kept = sub.position
    assert kept is not None
    missed = [await create(b, f"missed {n}") for n in range(3)]
    async with connect(live(b), **FAST) as client:
        await client.subscribe("tasks", got, since=kept, on_unrecovered=got)
        await got.until(lambda items: len(items) >= 3)
        assert [p.data for p in got.publications()] == missed
        assert [p.offset for p in got.publications()] == [kept.offset + 1, kept.offset + 2, kept.offset + 3]

    got = Got()
    for n in range(HISTORY + 2):
        await create(a, f"trimmed {n}")
    async with connect(live(a), **FAST) as client:
        sub = await client.subscribe("tasks", got, since=kept, on_unrecovered=got)
        (unrecovered,) = await got.until(lambda items: len(items) >= 1)
        assert unrecovered == Unrecovered("tasks", kept, sub.position, "history")
        assert got.publications() == []


async def test_a_subscriber_whose_process_is_killed_resubscribes_on_the_other(site: Site) -> None:
    """The client's server process is SIGKILLed; the client reconnects (its URL function now
    names the other process) and subscribes again from its position: the publications made
    meanwhile arrive once and in order, and nothing is reported unrecovered."""
    a = site.servers[0]
    got = Got()
    connected = Got()
    with running([server_process(a.kind, env=site.env)]) as (doomed,):
        urls = iter([live(doomed)])

        def url() -> str:
            return next(urls, live(a))

        client = Client(url, on_connected=connected, **FAST)
        try:
            await client.connect()
            await client.subscribe("tasks", got, on_unrecovered=got)
            heard = await create(a, "heard")
            await got.until(lambda items: len(items) == 1)
            doomed.kill()
            missed = [await create(a, f"while away {n}") for n in range(3)]
            await connected.until(lambda items: len(items) == 2)
            await got.until(lambda items: len(items) >= 4)
            assert [p.data for p in got.publications()] == [heard, *missed]
            offsets = [p.offset for p in got.publications()]
            assert offsets == list(range(offsets[0], offsets[0] + 4))
            assert not any(isinstance(item, Unrecovered) for item in got.items)
        finally:
            await client.close()
