"""The journal (wsmanager.registry._journal): offsets, addressees, bounds; in memory and on Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests import redis_support
from tests.redis_support import ClusterGroup
from wsmanager.registry._journal import Entry, InMemoryJournal, Journal, key_of
from wsmanager.registry.redis import RedisRegistry

from .recovery_contract import JournalContract
from .registry_contract import entry

redis_url = redis_support.redis_url
shared_cluster = redis_support.shared_cluster


@pytest.fixture
def journal_of() -> Callable[[int], Journal]:
    """In memory, one journal is the whole store: the same one for the same bound."""
    made: dict[int, InMemoryJournal] = {}
    return lambda n: made.setdefault(n, InMemoryJournal(n))


class TestInMemoryJournal(JournalContract):
    """The journal contract in this process's memory."""


async def _journals(url: str) -> AsyncIterator[Callable[[int], Journal]]:
    """A factory of journals of registries sharing one fresh prefix at ``url``, cleared afterwards."""
    prefix = f"wsmtest-{secrets.token_hex(6)}"
    made: list[RedisRegistry] = []

    def make(n: int) -> Journal:
        made.append(RedisRegistry(url=url, prefix=prefix))
        return made[-1].make_journal(n)

    yield make
    if made:
        await made[0].clear()
    for registry in made:
        await registry.close()


@pytest.mark.redis
class TestRedisJournal(JournalContract):
    """The journal contract on Redis streams."""

    @pytest.fixture
    async def journal_of(self, redis_url: str) -> AsyncIterator[Callable[[int], Journal]]:
        async for make in _journals(redis_url):
            yield make


@pytest.mark.redis
class TestRedisJournalOnCluster(JournalContract):
    """The journal contract on a Redis Cluster (each handler's stream in a slot of its own)."""

    @pytest.fixture
    async def journal_of(self, shared_cluster: ClusterGroup) -> AsyncIterator[Callable[[int], Journal]]:
        async for make in _journals(shared_cluster.url):
            yield make


@pytest.mark.parametrize(
    ("kind", "target", "exclude", "expected"),
    [
        ("ids", ("s", "t"), (), True),
        ("ids", ("t",), (), False),
        ("group", ("room",), (), True),
        ("group", ("hall",), (), False),
        ("group", ("room",), ("s",), False),
        ("user", ("7",), (), True),
        ("user", ("8",), (), False),
        ("all", (), (), True),
        ("all", (), ("s",), False),
    ],
)
def test_who_an_entry_was_for(
    kind: Any, target: tuple[str, ...], exclude: tuple[str, ...], expected: bool
) -> None:
    sock = entry("s", user_id="7", groups={"room"})
    item = Entry(f"{int(sock.connected_at * 1000) + 5}-0", kind, target, "{}", frozenset(exclude))
    assert item.addressed_to(sock) is expected


def test_a_broadcast_to_all_is_not_for_sockets_that_came_later() -> None:
    sock = entry("s")
    before = Entry(f"{int(sock.connected_at * 1000) - 5}-0", "all", (), "{}")
    assert not before.addressed_to(sock)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1",
        "1-",
        "-1",
        "a-1",
        "1-b",
        "1-2-3",
        "9" * 50 + "-0",
        " 1-0",
        "1-0\n",
        "+1-0",
        "1_0-0",
        "\u0661\u0662\u0663-\u0660",  # Arabic-Indic digits: int() reads them, an offset has none
        "\uff11-0",  # a fullwidth digit
        "\u00b2-0",  # a superscript, which str.isdigit() takes
    ],
)
def test_malformed_offsets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        key_of(bad)
