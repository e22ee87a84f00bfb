"""The contract every registry backend keeps, as a reusable test class.

Subclass :class:`RegistryContract` in a module named ``test_registry_*.py``
whose ``registry`` fixture yields a fresh, empty backend; pytest then runs
every test below against it. The base class has no ``Test`` prefix so it is
not collected on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wsmanager.exceptions import SocketNotFound
from wsmanager.registry._base import ConnectionInfo, Departure, RegistryBackend, member_key

__all__ = ["RegistryContract", "entry"]


def entry(sid: str, handler: str = "chat", node: str = "n1", **fields: Any) -> ConnectionInfo:
    """A ConnectionInfo with sensible defaults for tests."""
    if "groups" in fields:
        fields["groups"] = frozenset(fields["groups"])
    return ConnectionInfo(id=sid, handler=handler, node=node, connected_at=1712345678.25, **fields)


class RegistryContract:
    """Tests of the rules in :mod:`wsmanager.registry._base`; needs a ``registry`` fixture."""

    # -- add / get / remove ----------------------------------------------------
    async def test_add_then_get_returns_every_field(self, registry: RegistryBackend) -> None:
        """get() returns what add() stored: groups, meta, path_kwargs, user_id, node, time."""
        info = entry(
            "s1",
            user_id="u1",
            groups={"room:1", "lobby"},
            path_kwargs={"room": "1", "n": 7},
            meta={"name": "Ann", "tags": [], "nested": {"a": [1, 2.5, None, True]}},
        )
        await registry.add(info)
        assert await registry.get("chat", "s1") == info

    async def test_get_unknown_socket_is_none(self, registry: RegistryBackend) -> None:
        """get() of an unknown id (or handler) returns None."""
        await registry.add(entry("s1"))
        assert await registry.get("chat", "nope") is None
        assert await registry.get("other", "s1") is None

    async def test_remove_returns_the_entry_as_it_was(self, registry: RegistryBackend) -> None:
        """remove() returns the latest entry, including later group and meta changes."""
        await registry.add(entry("s1", user_id="u1", groups={"a"}, meta={"x": 1}))
        await registry.group_add("chat", "b", "s1")
        await registry.update_meta("chat", "s1", {"y": 2})
        removed = await registry.remove("chat", "s1")
        expected = entry("s1", user_id="u1", groups={"a", "b"}, meta={"x": 1, "y": 2})
        assert removed == Departure.of(expected, left={"a", "b"})
        assert isinstance(removed, ConnectionInfo)
        assert await registry.get("chat", "s1") is None

    async def test_remove_unknown_socket_is_none(self, registry: RegistryBackend) -> None:
        """remove() of an unknown id returns None and changes nothing."""
        await registry.add(entry("s1"))
        assert await registry.remove("chat", "nope") is None
        assert await registry.count("chat") == 1

    async def test_remove_twice_returns_none_the_second_time(self, registry: RegistryBackend) -> None:
        """Only the first remove() of a socket returns its entry."""
        await registry.add(entry("s1"))
        assert await registry.remove("chat", "s1") is not None
        assert await registry.remove("chat", "s1") is None

    async def test_remove_cleans_groups_and_user(self, registry: RegistryBackend) -> None:
        """remove() drops the socket from every group and from its user's sockets."""
        await registry.add(entry("s1", user_id="u1", groups={"a", "b"}))
        await registry.add(entry("s2", user_id="u1", groups={"b"}))
        await registry.remove("chat", "s1")
        assert await registry.group_members("chat", "a") == []
        assert await registry.group_members("chat", "b") == ["s2"]
        assert sorted(await registry.groups("chat")) == ["b"]
        assert await registry.user_sockets("chat", "u1") == ["s2"]
        await registry.remove("chat", "s2")
        assert await registry.groups("chat") == []
        assert await registry.user_sockets("chat", "u1") == []

    # -- count / ids -------------------------------------------------------------
    async def test_count_and_ids_follow_adds_and_removes(self, registry: RegistryBackend) -> None:
        """count() and ids() list exactly the open sockets of the handler."""
        assert await registry.count("chat") == 0
        assert await registry.ids("chat") == []
        for sid in ("s1", "s2", "s3"):
            await registry.add(entry(sid))
        await registry.remove("chat", "s2")
        assert await registry.count("chat") == 2
        assert sorted(await registry.ids("chat")) == ["s1", "s3"]

    async def test_handlers_are_separate_namespaces(self, registry: RegistryBackend) -> None:
        """The same socket id, group and user in two handlers are independent."""
        await registry.add(entry("s1", handler="chat", user_id="u", groups={"g"}))
        await registry.add(entry("s1", handler="game", user_id="u", groups={"g"}, node="n2"))
        assert (await registry.remove("chat", "s1")) is not None
        assert await registry.get("game", "s1") == entry(
            "s1", handler="game", user_id="u", groups={"g"}, node="n2"
        )
        assert await registry.group_members("game", "g") == ["s1"]
        assert await registry.user_sockets("game", "u") == ["s1"]
        assert await registry.groups("chat") == []
        assert await registry.count("chat") == 0

    async def test_names_with_separators_do_not_collide(self, registry: RegistryBackend) -> None:
        """Colons, percent signs and non-ASCII in handler, group and user names stay apart."""
        await registry.add(entry("x:1", handler="a", groups={"b:c"}, user_id="u:1"))
        await registry.add(entry("x:2", handler="a:b", groups={"c"}, user_id="1"))
        await registry.add(entry("ü 3", handler="a%3Ab", groups={"ç", "😀"}, user_id="ü"))
        assert await registry.group_members("a", "b:c") == ["x:1"]
        assert await registry.group_members("a:b", "c") == ["x:2"]
        assert await registry.group_members("a%3Ab", "ç") == ["ü 3"]
        assert await registry.groups("a:b") == ["c"]
        assert await registry.user_sockets("a", "u:1") == ["x:1"]
        assert await registry.user_sockets("a%3Ab", "ü") == ["ü 3"]
        assert await registry.ids("a:b") == ["x:2"]
        assert await registry.nodes_of("a", ["x:1"]) == {"n1": ["x:1"]}
        assert await registry.group_members("a%3Ab", "😀") == ["ü 3"]
        removed = await registry.remove("a%3Ab", "ü 3")
        assert removed is not None and removed.groups == {"ç", "😀"}
        assert await registry.groups("a%3Ab") == []
        assert await registry.user_sockets("a%3Ab", "ü") == []
        assert await registry.count("a:b") == 1

    # -- get_many / nodes_of -----------------------------------------------------
    async def test_get_many_keeps_order_and_skips_unknown(self, registry: RegistryBackend) -> None:
        """get_many() returns entries in the order asked for, leaving out unknown ids."""
        for sid in ("s1", "s2", "s3"):
            await registry.add(entry(sid))
        got = await registry.get_many("chat", ["s3", "nope", "s1"])
        assert [info.id for info in got] == ["s3", "s1"]
        assert got[0] == entry("s3")

    async def test_get_many_accepts_any_iterable(self, registry: RegistryBackend) -> None:
        """get_many() takes a generator, and an empty iterable gives an empty list."""
        await registry.add(entry("s1"))
        assert [i.id for i in await registry.get_many("chat", (s for s in ["s1"]))] == ["s1"]
        assert await registry.get_many("chat", []) == []

    async def test_nodes_of_groups_ids_by_node(self, registry: RegistryBackend) -> None:
        """nodes_of() maps each node to its sockets among those asked; unknown ids left out."""
        await registry.add(entry("s1", node="n1"))
        await registry.add(entry("s2", node="n2"))
        await registry.add(entry("s3", node="n1"))
        routes = await registry.nodes_of("chat", iter(["s1", "s2", "s3", "nope"]))
        assert {node: sorted(ids) for node, ids in routes.items()} == {
            "n1": ["s1", "s3"],
            "n2": ["s2"],
        }
        assert await registry.nodes_of("chat", []) == {}
        assert await registry.nodes_of("chat", ["nope"]) == {}

    # -- group_nodes: what a broadcast reads instead of the member list --------------
    async def test_group_nodes_counts_a_groups_sockets_per_node(self, registry: RegistryBackend) -> None:
        """group_nodes() follows adds, joins, leaves and removes; a node left with none vanishes."""
        assert await registry.group_nodes("chat", "room") == {}
        await registry.add(entry("s1", node="n1", groups={"room"}))
        await registry.add(entry("s2", node="n1", groups={"room", "other"}))
        await registry.add(entry("s3", node="n2"))
        await registry.add(entry("g1", handler="game", node="n3", groups={"room"}))
        assert await registry.group_nodes("chat", "room") == {"n1": 2}
        await registry.group_add("chat", "room", "s3")
        await registry.group_add("chat", "room", "s3")  # already in: counted once
        assert await registry.group_nodes("chat", "room") == {"n1": 2, "n2": 1}
        assert await registry.group_nodes("chat", "other") == {"n1": 1}
        await registry.group_discard("chat", "room", "s1")
        await registry.group_discard("chat", "room", "s1")  # not in it any more: no-op
        assert await registry.group_nodes("chat", "room") == {"n1": 1, "n2": 1}
        await registry.remove("chat", "s3")
        assert await registry.group_nodes("chat", "room") == {"n1": 1}
        await registry.remove("chat", "s2")
        assert await registry.group_nodes("chat", "room") == {}
        assert await registry.group_nodes("chat", "other") == {}
        assert await registry.group_nodes("game", "room") == {"n3": 1}

    async def test_group_nodes_leaves_the_excluded_members_out(self, registry: RegistryBackend) -> None:
        await registry.add(entry("s1", node="n1", groups={"room"}))
        await registry.add(entry("s2", node="n1", groups={"room"}))
        await registry.add(entry("s3", node="n2", groups={"room"}))
        await registry.add(entry("s4", node="n2"))  # not in the group: excluding it changes nothing
        assert await registry.group_nodes("chat", "room", ["s1", "s4", "nope", "s1"]) == {"n1": 1, "n2": 1}
        assert await registry.group_nodes("chat", "room", iter(["s3"])) == {"n1": 2}
        assert await registry.group_nodes("chat", "room", ["s1", "s2", "s3"]) == {}

    async def test_group_nodes_follow_a_replaced_entry_and_a_removed_node(
        self, registry: RegistryBackend
    ) -> None:
        await registry.add(entry("s1", node="n1", groups={"room"}))
        await registry.add(entry("s2", node="n2", groups={"room"}))
        await registry.add(entry("s1", node="n2", groups={"lobby"}))  # the same id, re-added elsewhere
        assert await registry.group_nodes("chat", "room") == {"n2": 1}
        assert await registry.group_nodes("chat", "lobby") == {"n2": 1}
        await registry.add(entry("s3", node="n1", groups={"room"}))
        await registry.remove_node("n2")
        assert await registry.group_nodes("chat", "room") == {"n1": 1}
        assert await registry.group_nodes("chat", "lobby") == {}

    # -- meta --------------------------------------------------------------------
    async def test_update_meta_merges(self, registry: RegistryBackend) -> None:
        """update_meta() adds and replaces keys and keeps the others."""
        await registry.add(entry("s1", meta={"a": 1, "b": 2}))
        await registry.update_meta("chat", "s1", {"b": 3, "c": [4]})
        info = await registry.get("chat", "s1")
        assert info is not None
        assert dict(info.meta) == {"a": 1, "b": 3, "c": [4]}

    async def test_update_meta_unknown_socket_raises(self, registry: RegistryBackend) -> None:
        """update_meta() of an unknown socket raises SocketNotFound naming it."""
        with pytest.raises(SocketNotFound) as caught:
            await registry.update_meta("chat", "nope", {"a": 1})
        assert caught.value.socket_id == "nope"

    async def test_concurrent_meta_updates_all_land(self, registry: RegistryBackend) -> None:
        """Concurrent update_meta() calls on one socket lose no key."""
        await registry.add(entry("s1"))
        await asyncio.gather(*(registry.update_meta("chat", "s1", {f"k{i}": i}) for i in range(30)))
        info = await registry.get("chat", "s1")
        assert info is not None
        assert dict(info.meta) == {f"k{i}": i for i in range(30)}

    # -- groups ------------------------------------------------------------------
    async def test_group_add_updates_entry_and_members(self, registry: RegistryBackend) -> None:
        """group_add() shows in the entry's groups, group_members() and groups()."""
        await registry.add(entry("s1"))
        await registry.group_add("chat", "room", "s1")
        await registry.group_add("chat", "room", "s1")  # twice: still one membership
        info = await registry.get("chat", "s1")
        assert info is not None and info.groups == {"room"}
        assert await registry.group_members("chat", "room") == ["s1"]
        assert await registry.groups("chat") == ["room"]

    async def test_group_add_unknown_socket_raises(self, registry: RegistryBackend) -> None:
        """group_add() of an unknown socket raises SocketNotFound and creates no group."""
        with pytest.raises(SocketNotFound) as caught:
            await registry.group_add("chat", "room", "nope")
        assert caught.value.socket_id == "nope"
        assert await registry.groups("chat") == []
        assert await registry.group_members("chat", "room") == []

    async def test_group_discard_non_member_is_noop(self, registry: RegistryBackend) -> None:
        """group_discard() of a non-member, or of an unknown socket, changes nothing."""
        await registry.add(entry("s1", groups={"a"}))
        await registry.group_discard("chat", "b", "s1")
        await registry.group_discard("chat", "a", "nope")
        info = await registry.get("chat", "s1")
        assert info is not None and info.groups == {"a"}
        assert await registry.group_members("chat", "a") == ["s1"]

    async def test_empty_groups_vanish(self, registry: RegistryBackend) -> None:
        """A group whose last member leaves is no longer listed by groups()."""
        await registry.add(entry("s1", groups={"a", "b"}))
        await registry.add(entry("s2", groups={"b"}))
        await registry.group_discard("chat", "a", "s1")
        assert sorted(await registry.groups("chat")) == ["b"]
        assert await registry.group_members("chat", "a") == []
        info = await registry.get("chat", "s1")
        assert info is not None and info.groups == {"b"}
        await registry.group_discard("chat", "b", "s1")
        await registry.group_discard("chat", "b", "s2")
        assert await registry.groups("chat") == []

    async def test_group_members_of_unknown_group_is_empty(self, registry: RegistryBackend) -> None:
        """group_members() of a group that never existed is an empty list."""
        assert await registry.group_members("chat", "nothing") == []

    async def test_group_members_with_a_limit_give_at_most_that_many_distinct_ids(
        self, registry: RegistryBackend
    ) -> None:
        """group_members(limit=n): n distinct members of the group (all of a smaller group)."""
        for i in range(30):
            await registry.add(entry(f"s{i}", groups={"big"}))
        await registry.add(entry("alone", groups={"small"}))
        some = await registry.group_members("chat", "big", 10)
        assert len(some) == len(set(some)) == 10 and set(some) <= {f"s{i}" for i in range(30)}
        assert await registry.group_members("chat", "small", 10) == ["alone"]
        assert await registry.group_members("chat", "big", 0) == []
        assert await registry.group_members("chat", "nothing", 10) == []

    async def test_group_size_and_member_count_count_sockets_and_members(
        self, registry: RegistryBackend
    ) -> None:
        """Three sockets of one user and two anonymous ones: 5 sockets, 3 members."""
        for i in range(3):
            await registry.add(entry(f"u{i}", user_id="7", groups={"room"}))
        for i in range(2):
            await registry.add(entry(f"a{i}", groups={"room"}))
        assert await registry.group_size("chat", "room") == 5
        assert await registry.member_count("chat", "room") == 3
        await registry.remove("chat", "u0")
        assert await registry.group_size("chat", "room") == 4
        assert await registry.member_count("chat", "room") == 3
        assert await registry.group_size("chat", "none") == await registry.member_count("chat", "none") == 0

    async def test_concurrent_group_adds_all_land(self, registry: RegistryBackend) -> None:
        """Concurrent group_add() calls on one socket lose no group."""
        await registry.add(entry("s1"))
        names = [f"g{i}" for i in range(30)]
        await asyncio.gather(*(registry.group_add("chat", g, "s1") for g in names))
        info = await registry.get("chat", "s1")
        assert info is not None and info.groups == set(names)
        assert sorted(await registry.groups("chat")) == sorted(names)

    async def test_group_add_racing_remove_leaves_no_ghost(self, registry: RegistryBackend) -> None:
        """group_add() racing remove() either lands before it or raises: no ghost member."""
        await registry.add(entry("s1"))
        names = [f"g{i}" for i in range(40)]
        adds = [registry.group_add("chat", g, "s1") for g in names]
        results = await asyncio.gather(
            *adds[:20], registry.remove("chat", "s1"), *adds[20:], return_exceptions=True
        )
        removed = results[20]
        assert isinstance(removed, Departure)
        outcomes = dict(zip(names, results[:20] + results[21:], strict=True))
        for outcome in outcomes.values():
            assert isinstance(outcome, ConnectionInfo | SocketNotFound)
        landed = {g for g, outcome in outcomes.items() if isinstance(outcome, ConnectionInfo)}
        assert removed.groups == landed
        assert removed.left == landed
        assert await registry.groups("chat") == []
        for g in names:
            assert await registry.group_members("chat", g) == []

    # -- users -------------------------------------------------------------------
    async def test_user_sockets_lists_every_socket_of_the_user(self, registry: RegistryBackend) -> None:
        """user_sockets() lists each open socket of the user, and nothing for others."""
        await registry.add(entry("s1", user_id="u1"))
        await registry.add(entry("s2", user_id="u1"))
        await registry.add(entry("s3", user_id="u2"))
        await registry.add(entry("s4"))
        assert sorted(await registry.user_sockets("chat", "u1")) == ["s1", "s2"]
        assert await registry.user_sockets("chat", "nobody") == []

    # -- nodes -------------------------------------------------------------------
    async def test_remove_node_forgets_its_sockets(self, registry: RegistryBackend) -> None:
        """remove_node() returns the node's entries in every handler and cleans all indexes."""
        await registry.add(entry("s1", node="n1", user_id="u", groups={"g"}))
        await registry.add(entry("s2", node="n2", user_id="u", groups={"g"}))
        await registry.add(entry("s3", handler="game", node="n1", groups={"h"}))
        await registry.group_add("chat", "solo", "s1")
        gone = await registry.remove_node("n1")
        assert sorted((i.handler, i.id) for i in gone) == [("chat", "s1"), ("game", "s3")]
        assert next(i for i in gone if i.id == "s1").groups == {"g", "solo"}
        assert await registry.ids("chat") == ["s2"]
        assert await registry.count("game") == 0
        assert await registry.groups("chat") == ["g"]
        assert await registry.groups("game") == []
        assert await registry.group_members("chat", "g") == ["s2"]
        assert await registry.user_sockets("chat", "u") == ["s2"]
        assert await registry.nodes_of("chat", ["s1", "s2"]) == {"n2": ["s2"]}
        assert await registry.remove_node("n1") == []

    async def test_node_alive_keeps_sockets(self, registry: RegistryBackend) -> None:
        """node_alive() of a live node never removes its sockets."""
        await registry.add(entry("s1", node="n1"))
        await registry.node_alive("n1")
        await registry.node_alive("n2")
        assert await registry.ids("chat") == ["s1"]

    # -- node counters -------------------------------------------------------------
    async def test_published_node_stats_replace_each_other_and_go_with_the_node(
        self, registry: RegistryBackend
    ) -> None:
        """Each publication replaces the node's last; remove_node() takes them away."""
        await registry.add(entry("s1", node="n1"))
        await registry.add(entry("s2", node="n2"))
        await registry.put_node_stats("n1", {"delivered": 3, "sockets": 1})
        await registry.put_node_stats("n1", {"delivered": 5, "sockets": 1})
        await registry.put_node_stats("n2", {"rate_limited": 2})
        stats = await registry.node_stats()
        assert stats["n1"] == {"delivered": 5, "sockets": 1}
        assert stats["n2"] == {"rate_limited": 2}
        await registry.remove_node("n1")
        assert "n1" not in await registry.node_stats()

    # -- last activity -------------------------------------------------------------
    async def test_published_last_activity_is_read_per_socket_of_its_node(
        self, registry: RegistryBackend
    ) -> None:
        """last_activity() answers each socket from its own node's latest publication;
        sockets never published (or left out of the latest one) have none."""
        s1, s2, s3 = entry("s1", node="n1"), entry("s2", node="n1"), entry("s3", node="n2")
        for info in (s1, s2, s3):
            await registry.add(info)
        await registry.put_node_activity("n1", {"s1": 1712345700.5, "s2": 1712345701.25})
        await registry.put_node_activity("n1", {"s1": 1712345702.125})  # s2 had no frame: not listed
        await registry.put_node_activity("n2", {"s3": 1712345703.0, "s1": 1.0})  # n2 does not hold s1
        assert await registry.last_activity([s1, s2, s3]) == {"s1": 1712345702.125, "s3": 1712345703.0}
        assert await registry.last_activity([s3]) == {"s3": 1712345703.0}
        assert await registry.last_activity([]) == {}
        await registry.put_node_activity("n1", {})
        assert await registry.last_activity([s1, s2]) == {}

    async def test_clear_forgets_published_last_activity(self, registry: RegistryBackend) -> None:
        await registry.add(entry("s1"))
        await registry.put_node_activity("n1", {"s1": 1712345700.5})
        await registry.clear()
        assert await registry.last_activity([entry("s1")]) == {}

    # -- presence ----------------------------------------------------------------
    async def test_member_key_is_the_user_or_the_socket(self, registry: RegistryBackend) -> None:
        """A socket's member is its user id, or "socket:<id>" without a user."""
        assert member_key("42", "s1") == "42"
        assert member_key(None, "s1") == "socket:s1"
        assert entry("s1", user_id="u1").member == "u1"
        assert entry("s1").member == "socket:s1"

    async def test_user_ids_that_look_like_member_keys_never_collide(self, registry: RegistryBackend) -> None:
        """Users "socket:s3" and "user:socket:s3" and anonymous socket s3 are three members."""
        assert member_key("socket:s3", "s1") == "user:socket:s3"
        assert member_key("user:socket:s3", "s2") == "user:user:socket:s3"
        assert await registry.add(entry("s1", user_id="socket:s3", groups={"g"})) == {"g"}
        assert await registry.add(entry("s2", user_id="user:socket:s3", groups={"g"})) == {"g"}
        assert await registry.add(entry("s3", groups={"g"})) == {"g"}
        assert await registry.user_sockets("chat", "socket:s3") == ["s1"]
        assert await registry.user_sockets("chat", "user:socket:s3") == ["s2"]
        for sid in ("s1", "s2", "s3"):
            departure = await registry.remove("chat", sid)
            assert departure is not None and departure.left == {"g"}, sid
        assert await registry.groups("chat") == []
        assert await registry.user_sockets("chat", "socket:s3") == []

    async def test_group_add_reports_a_member_joining_once(self, registry: RegistryBackend) -> None:
        """group_add() returns the entry for a user's first socket in a group, None for the next."""
        await registry.add(entry("s1", user_id="u1"))
        await registry.add(entry("s2", user_id="u1"))
        await registry.add(entry("s3"))
        await registry.add(entry("s4"))
        joined = await registry.group_add("chat", "g", "s1")
        assert joined == entry("s1", user_id="u1", groups={"g"})
        assert joined == await registry.get("chat", "s1")
        assert await registry.group_add("chat", "g", "s2") is None  # same user
        assert await registry.group_add("chat", "g", "s1") is None  # already in
        assert await registry.group_add("chat", "g", "s3") == entry("s3", groups={"g"})
        assert await registry.group_add("chat", "g", "s4") == entry("s4", groups={"g"})
        assert await registry.group_add("chat", "other", "s2") == entry(
            "s2", user_id="u1", groups={"g", "other"}
        )

    async def test_group_discard_reports_the_last_socket_leaving(self, registry: RegistryBackend) -> None:
        """group_discard() returns the entry only when the member's last socket leaves."""
        await registry.add(entry("s1", user_id="u1", groups={"g", "h"}))
        await registry.add(entry("s2", user_id="u1", groups={"g"}))
        await registry.add(entry("s3", groups={"g"}))
        assert await registry.group_discard("chat", "g", "s1") is None  # s2 is still there
        assert await registry.group_discard("chat", "g", "s1") is None  # not a member any more
        assert await registry.group_discard("chat", "g", "nope") is None
        assert await registry.group_discard("chat", "g", "s2") == entry("s2", user_id="u1")
        assert await registry.group_discard("chat", "g", "s3") == entry("s3")
        assert await registry.group_discard("chat", "h", "s1") == entry("s1", user_id="u1")
        assert await registry.groups("chat") == []

    async def test_add_reports_the_groups_its_member_joined(self, registry: RegistryBackend) -> None:
        """add() returns the groups in which the socket is its member's first."""
        assert await registry.add(entry("s1", user_id="u1", groups={"a", "b"})) == {"a", "b"}
        assert await registry.add(entry("s2", user_id="u1", groups={"b", "c"})) == {"c"}
        assert await registry.add(entry("s3", groups={"a"})) == {"a"}
        assert await registry.add(entry("s4", user_id="u2")) == frozenset()

    async def test_add_replacing_an_entry_reports_no_rejoin(self, registry: RegistryBackend) -> None:
        """Re-adding the same socket with the same groups reports no join."""
        await registry.add(entry("s1", user_id="u1", groups={"g"}))
        assert await registry.add(entry("s1", user_id="u1", groups={"g", "h"})) == {"h"}
        assert await registry.group_members("chat", "g") == ["s1"]
        removed = await registry.remove("chat", "s1")
        assert removed is not None and removed.left == {"g", "h"}

    async def test_remove_reports_the_groups_its_member_left(self, registry: RegistryBackend) -> None:
        """remove() returns a Departure whose ``left`` lists the groups the member left."""
        await registry.add(entry("s1", user_id="u1", groups={"a", "b"}))
        await registry.add(entry("s2", user_id="u1", groups={"b"}))
        await registry.add(entry("s3", groups={"a"}))
        first = await registry.remove("chat", "s1")
        assert first is not None and first.left == {"a"} and first.groups == {"a", "b"}
        second = await registry.remove("chat", "s2")
        assert second is not None and second.left == {"b"}
        third = await registry.remove("chat", "s3")
        assert third is not None and third.left == {"a"}
        assert await registry.take_departures() == []  # remove() queues nothing

    async def test_presence_is_per_handler(self, registry: RegistryBackend) -> None:
        """One user in a group of two handlers is two independent members."""
        assert await registry.add(entry("s1", user_id="u", groups={"g"})) == {"g"}
        assert await registry.add(entry("s2", handler="game", user_id="u", groups={"g"})) == {"g"}
        removed = await registry.remove("game", "s2")
        assert removed is not None and removed.left == {"g"}

    async def test_remove_node_queues_departures_that_left_a_group(self, registry: RegistryBackend) -> None:
        """remove_node() returns every departure and queues those that left a group, once."""
        await registry.add(entry("s1", node="n1", user_id="u1", groups={"g"}))
        await registry.add(entry("s2", node="n2", user_id="u1", groups={"g"}))
        await registry.add(entry("s3", node="n1", groups={"g", "h"}))
        await registry.add(entry("s4", node="n1"))
        gone = await registry.remove_node("n1")
        assert {d.id: d.left for d in gone} == {"s1": set(), "s3": {"g", "h"}, "s4": set()}
        taken = await registry.take_departures()
        assert taken == [Departure.of(entry("s3", node="n1", groups={"g", "h"}), {"g", "h"})]
        assert await registry.take_departures() == []

    async def test_take_departures_respects_its_limit(self, registry: RegistryBackend) -> None:
        """take_departures(limit) takes at most ``limit``, oldest first; the rest stay queued."""
        for i in range(5):
            await registry.add(entry(f"s{i}", node="n1", groups={"g"}))
        await registry.remove_node("n1")
        first = await registry.take_departures(2)
        rest = await registry.take_departures(10)
        assert len(first) == 2 and len(rest) == 3
        assert sorted(d.id for d in first + rest) == [f"s{i}" for i in range(5)]

    async def test_tabs_joining_at_once_join_once(self, registry: RegistryBackend) -> None:
        """20 sockets of one user joining a group concurrently report exactly one join."""
        sids = [f"s{i}" for i in range(20)]
        for sid in sids:
            await registry.add(entry(sid, user_id="u1"))
        results = await asyncio.gather(*(registry.group_add("chat", "g", sid) for sid in sids))
        assert len([r for r in results if r is not None]) == 1
        assert sorted(await registry.group_members("chat", "g")) == sorted(sids)

    async def test_tabs_added_at_once_join_once(self, registry: RegistryBackend) -> None:
        """20 sockets of one user added concurrently with a group report one join."""
        results = await asyncio.gather(
            *(registry.add(entry(f"s{i}", user_id="u1", groups={"g"})) for i in range(20))
        )
        assert [r for r in results if r] == [frozenset({"g"})]

    async def test_tabs_leaving_at_once_leave_once(self, registry: RegistryBackend) -> None:
        """20 sockets of one user leaving at once (remove and discard mixed) report one leave."""
        sids = [f"s{i}" for i in range(20)]
        for sid in sids:
            await registry.add(entry(sid, user_id="u1", groups={"g"}))
        results = await asyncio.gather(
            *(
                registry.remove("chat", sid) if i % 2 else registry.group_discard("chat", "g", sid)
                for i, sid in enumerate(sids)
            )
        )
        lefts = [
            r
            for r in results
            if (isinstance(r, Departure) and r.left) or (r is not None and not isinstance(r, Departure))
        ]
        assert len(lefts) == 1
        assert await registry.groups("chat") == []

    async def test_members_join_and_leave_again(self, registry: RegistryBackend) -> None:
        """After a member left a group, its next socket there joins again."""
        await registry.add(entry("s1", user_id="u1", groups={"g"}))
        await registry.remove("chat", "s1")
        assert await registry.add(entry("s2", user_id="u1", groups={"g"})) == {"g"}
        assert await registry.group_discard("chat", "g", "s2") is not None
        assert await registry.group_add("chat", "g", "s2") is not None

    # -- snapshots -------------------------------------------------------------
    async def test_query_results_are_snapshots(self, registry: RegistryBackend) -> None:
        """Results already returned do not change when the registry changes."""
        await registry.add(entry("s1", groups={"a"}, meta={"x": 1}))
        info = await registry.get("chat", "s1")
        ids = await registry.ids("chat")
        members = await registry.group_members("chat", "a")
        groups = await registry.groups("chat")
        await registry.update_meta("chat", "s1", {"x": 2})
        await registry.group_add("chat", "b", "s1")
        await registry.add(entry("s2", groups={"a"}))
        assert info == entry("s1", groups={"a"}, meta={"x": 1})
        assert ids == ["s1"]
        assert members == ["s1"]
        assert groups == ["a"]

    async def test_clear_forgets_everything(self, registry: RegistryBackend) -> None:
        """clear() empties every handler, group and user."""
        await registry.add(entry("s1", user_id="u", groups={"g"}))
        await registry.add(entry("s2", handler="game"))
        await registry.add(entry("s3", node="n9", groups={"g"}))
        await registry.remove_node("n9")
        await registry.clear()
        assert await registry.take_departures() == []
        assert await registry.count("chat") == 0
        assert await registry.count("game") == 0
        assert await registry.groups("chat") == []
        assert await registry.user_sockets("chat", "u") == []
        assert await registry.get("chat", "s1") is None
