"""The recovery half of the registry contract (park, claim, expire) and of the
journal, as reusable test classes; run against every backend like
:mod:`tests.registry_contract`.
"""

from __future__ import annotations

import time

from wsmanager.registry._base import PARKED, RegistryBackend
from wsmanager.registry._journal import ZERO, Entry, key_of

from .registry_contract import entry

__all__ = ["JournalContract", "RecoveryContract"]


def recoverable(sid: str, node: str = "n1", **fields: object) -> object:
    return entry(sid, node=node, recovery=30.0, resume_key="k" * 64, **fields)


class RecoveryContract:
    """Parking and claiming entries; needs a ``registry`` fixture."""

    async def test_a_parked_socket_keeps_its_entry_groups_and_presence(
        self, registry: RegistryBackend
    ) -> None:
        await registry.add(recoverable("s1", user_id="u", groups={"room"}))  # type: ignore[arg-type]
        assert await registry.park("chat", "s1", "n1", time.time() + 30)
        assert await registry.nodes_of("chat", ["s1"]) == {PARKED: ["s1"]}
        assert await registry.group_members("chat", "room") == ["s1"]
        assert await registry.user_sockets("chat", "u") == ["s1"]
        assert (await registry.get("chat", "s1")) is not None

    async def test_group_nodes_count_parked_sockets_under_parked_until_claimed(
        self, registry: RegistryBackend
    ) -> None:
        """Parking moves a socket's count in each of its groups to PARKED; a claim moves
        it to the new node; an expired window drops it."""
        old = recoverable("s1", groups={"room", "lobby"})
        await registry.add(old)  # type: ignore[arg-type]
        await registry.add(recoverable("s2", groups={"room"}))  # type: ignore[arg-type]
        assert await registry.park("chat", "s1", "n1", time.time() + 30)
        assert await registry.group_nodes("chat", "room") == {PARKED: 1, "n1": 1}
        assert await registry.group_nodes("chat", "lobby") == {PARKED: 1}
        assert await registry.group_nodes("chat", "room", ["s1"]) == {"n1": 1}
        parked = await registry.get("chat", "s1")
        assert parked is not None
        assert (await registry.claim(parked, parked.with_changes(node="n2"))).outcome == "ok"
        assert await registry.group_nodes("chat", "room") == {"n1": 1, "n2": 1}
        assert await registry.group_nodes("chat", "lobby") == {"n2": 1}
        live = await registry.get("chat", "s2")
        assert live is not None  # a live socket claimed by another node moves too
        assert (await registry.claim(live, live.with_changes(node="n2"))).outcome == "ok"
        assert await registry.group_nodes("chat", "room") == {"n2": 2}
        assert await registry.park("chat", "s2", "n2", time.time() - 1)
        assert await registry.group_nodes("chat", "room") == {"n2": 1, PARKED: 1}
        assert await registry.expire_parked() == 1
        assert await registry.group_nodes("chat", "room") == {"n2": 1}

    async def test_only_the_node_holding_a_socket_parks_it(self, registry: RegistryBackend) -> None:
        await registry.add(recoverable("s1"))  # type: ignore[arg-type]
        assert not await registry.park("chat", "s1", "other-node", time.time() + 30)
        assert not await registry.park("chat", "nope", "n1", time.time() + 30)
        assert await registry.nodes_of("chat", ["s1"]) == {"n1": ["s1"]}

    async def test_a_claim_moves_the_socket_to_the_new_node_once(self, registry: RegistryBackend) -> None:
        old = recoverable("s1", groups={"room"})
        await registry.add(old)  # type: ignore[arg-type]
        await registry.park("chat", "s1", "n1", time.time() + 30)
        new = old.with_changes(node="n2", resume_key="j" * 64)  # type: ignore[attr-defined]
        first = await registry.claim(old, new)  # type: ignore[arg-type]
        assert (first.outcome, first.previous) == ("ok", PARKED)
        assert (await registry.claim(old, new)).outcome == "changed"  # type: ignore[arg-type]
        assert await registry.nodes_of("chat", ["s1"]) == {"n2": ["s1"]}
        assert await registry.get("chat", "s1") == new
        assert await registry.group_members("chat", "room") == ["s1"]

    async def test_a_live_socket_can_be_claimed_and_its_old_node_no_longer_removes_it(
        self, registry: RegistryBackend
    ) -> None:
        old = recoverable("s1")
        await registry.add(old)  # type: ignore[arg-type]
        new = old.with_changes(node="n2")  # type: ignore[attr-defined]
        claim = await registry.claim(old, new)  # type: ignore[arg-type]
        assert (claim.outcome, claim.previous) == ("ok", "n1")
        assert await registry.remove("chat", "s1", "n1") is None
        assert not await registry.park("chat", "s1", "n1", time.time() + 30)
        assert await registry.get("chat", "s1") == new
        assert await registry.remove_node("n1") == []
        assert await registry.get("chat", "s1") == new

    async def test_claims_of_unknown_or_expired_sockets_fail(self, registry: RegistryBackend) -> None:
        ghost = recoverable("s9")
        assert (await registry.claim(ghost, ghost)).outcome == "unknown"  # type: ignore[arg-type]
        old = recoverable("s1")
        await registry.add(old)  # type: ignore[arg-type]
        await registry.park("chat", "s1", "n1", time.time() - 1)
        claim = await registry.claim(old, old.with_changes(node="n2"))  # type: ignore[arg-type, attr-defined]
        assert claim.outcome == "expired"

    async def test_expiry_forgets_parked_sockets_past_their_window_and_queues_their_departure(
        self, registry: RegistryBackend
    ) -> None:
        await registry.add(recoverable("late", groups={"room"}))  # type: ignore[arg-type]
        await registry.add(recoverable("soon", groups={"room"}))  # type: ignore[arg-type]
        await registry.park("chat", "late", "n1", time.time() - 1)
        await registry.park("chat", "soon", "n1", time.time() + 30)
        assert await registry.expire_parked() == 1
        assert await registry.get("chat", "late") is None
        assert await registry.group_members("chat", "room") == ["soon"]
        departed = await registry.take_departures()
        assert [(d.id, d.left) for d in departed] == [("late", frozenset({"room"}))]
        assert await registry.expire_parked() == 0

    async def test_remove_node_parks_recoverable_sockets_and_forgets_the_others(
        self, registry: RegistryBackend
    ) -> None:
        await registry.add(recoverable("keep", groups={"room"}))  # type: ignore[arg-type]
        await registry.add(entry("plain", groups={"room"}))
        gone = await registry.remove_node("n1")
        assert [d.id for d in gone] == ["plain"]
        assert await registry.nodes_of("chat", ["keep", "plain"]) == {PARKED: ["keep"]}
        assert await registry.group_nodes("chat", "room") == {PARKED: 1}


class JournalContract:
    """The journal's offsets, reads, bounds and loss reports; needs a ``journal_of``
    fixture: a factory ``journal_of(max_entries)`` of journals sharing one store."""

    async def test_offsets_grow_and_read_returns_what_follows_in_order(self, journal_of: object) -> None:
        journal = journal_of(100)  # type: ignore[operator]
        assert await journal.last("h") == ZERO
        offsets = [await journal.append("h", "ids", ["a"], f'{{"n":{i}}}') for i in range(5)]
        assert [key_of(o) for o in offsets] == sorted({key_of(o) for o in offsets})
        assert await journal.last("h") == offsets[-1]
        read = await journal.read("h", offsets[1])
        assert [e.offset for e in read.entries] == offsets[2:]
        assert [e.text for e in read.entries] == ['{"n":2}', '{"n":3}', '{"n":4}']
        assert not read.lost and read.last == offsets[-1]
        assert (await journal.read("other", ZERO)).entries == []

    async def test_an_entry_keeps_its_addressees(self, journal_of: object) -> None:
        journal = journal_of(100)  # type: ignore[operator]
        await journal.append("h", "group", ["room"], "{}", exclude=["x", "y"])
        await journal.append("h", "user", ["7"], "{}")
        group, user = (await journal.read("h", ZERO)).entries
        assert (group.kind, group.target, group.exclude) == ("group", ("room",), frozenset({"x", "y"}))
        assert (user.kind, user.target, user.exclude) == ("user", ("7",), frozenset())

    async def test_a_read_past_a_trimmed_entry_reports_the_loss(self, journal_of: object) -> None:
        journal = journal_of(3)  # type: ignore[operator]
        offsets = [await journal.append("h", "ids", ["a"], "{}") for _ in range(400)]
        read = await journal.read("h", offsets[0])
        assert read.lost
        assert not (await journal.read("h", offsets[-2])).lost
        assert len(read.entries) < 400

    async def test_trim_by_time_reports_the_loss_too(self, journal_of: object) -> None:
        journal = journal_of(100)  # type: ignore[operator]
        first = await journal.append("h", "ids", ["a"], "{}")
        await journal.trim("h", int(time.time() * 1000) + 1000)
        assert (await journal.read("h", ZERO)).lost
        assert (await journal.read("h", first)).entries == []

    async def test_a_read_stops_at_its_byte_budget_and_says_so(self, journal_of: object) -> None:
        """However old the offset read from: the entries read weigh the budget plus at most one
        (on Redis: one batch of the heaviest seen), and ``complete`` tells the rest was not read."""
        journal = journal_of(1000)  # type: ignore[operator]
        text = "x" * 1000
        for _ in range(300):
            await journal.append("h", "group", ["room"], text)
        weight = Entry("0-0", "group", ("room",), text).weight
        read = await journal.read("h", ZERO, max_bytes=20 * weight)
        assert not read.complete and not read.lost
        assert 20 <= len(read.entries) <= 21
        whole = await journal.read("h", ZERO, max_bytes=300 * weight)
        assert whole.complete and len(whole.entries) == 300
        assert (await journal.read("h", ZERO)).complete

    async def test_a_gap_lost_already_reads_no_entry(self, journal_of: object) -> None:
        journal = journal_of(100)  # type: ignore[operator]
        first = await journal.append("h", "ids", ["a"], "{}")
        await journal.trim("h", key_of(first)[0] + 1)
        for _ in range(50):
            await journal.append("h", "ids", ["a"], "{}")
        read = await journal.read("h", ZERO, lost_after=ZERO)
        assert read.lost and read.entries == []

    async def test_enable_is_seen_by_every_journal_of_the_store(self, journal_of: object) -> None:
        one, two = journal_of(10), journal_of(10)  # type: ignore[operator]
        assert await two.enabled("h") == 0.0
        await one.enable("h", 60.0)
        await one.enable("h", 30.0)  # the largest window wins
        assert await two.enabled("h") == 60.0
