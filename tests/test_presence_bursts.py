"""Presence in bursts: ``on_presence_changes`` hears the first change of a quiet group at
once and the changes of the following interval together, net. The interval is driven by
hand here (``presence._flush``), so nothing depends on the clock."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest

from wsmanager import Change, RpcHandler
from wsmanager import _presence as presence
from wsmanager.registry import ConnectionInfo, get_registry

CALLS: list[tuple[str, list[tuple[str, str]]]] = []


class BurstHandler(RpcHandler):
    handler_name = "tests.presence.burst"
    presence_interval: ClassVar[float | None] = 3600.0  # flushed by hand in these tests

    @classmethod
    async def on_presence_changes(cls, group: str, changes: list[Change]) -> None:
        CALLS.append((group, [(event, member.key) for event, member in changes]))


class FailingBurstHandler(BurstHandler):
    handler_name = "tests.presence.burst.failing"

    @classmethod
    async def on_presence_changes(cls, group: str, changes: list[Change]) -> None:
        raise RuntimeError("hook failed")


@pytest.fixture(autouse=True)
def _clean() -> Any:
    CALLS.clear()
    yield
    CALLS.clear()


async def add(sid: str, user: str | None = None, handler: type[RpcHandler] = BurstHandler) -> None:
    await get_registry().add(ConnectionInfo(id=sid, handler=handler.handler_name, node="n", user_id=user))


async def flush(handler: type[RpcHandler] = BurstHandler, group: str = "room") -> None:
    """End the group's interval now, and let its announcement run."""
    presence._flush(handler, (handler.handler_name, group))
    for task in list(presence._flushing):
        await task


async def test_the_first_change_of_a_quiet_group_is_announced_at_once_and_alone() -> None:
    await add("s1")
    await presence.join(BurstHandler.handler_name, "room", "s1")
    assert CALLS == [("room", [("joined", "socket:s1")])]


async def test_changes_within_the_interval_come_together_in_order() -> None:
    for sid in ("s1", "s2", "s3"):
        await add(sid)
    await presence.join(BurstHandler.handler_name, "room", "s1")
    await presence.join(BurstHandler.handler_name, "room", "s2")
    await presence.join(BurstHandler.handler_name, "room", "s3")
    await presence.leave(BurstHandler.handler_name, "room", "s1")
    assert len(CALLS) == 1  # the rest waits for the interval's end
    await flush()
    assert CALLS[1] == ("room", [("joined", "socket:s2"), ("joined", "socket:s3"), ("left", "socket:s1")])


async def test_a_change_and_its_undoing_within_the_interval_cancel_out() -> None:
    for sid in ("s1", "s2"):
        await add(sid)
    await presence.join(BurstHandler.handler_name, "room", "s1")  # at once
    await presence.join(BurstHandler.handler_name, "room", "s2")
    await presence.leave(BurstHandler.handler_name, "room", "s2")  # came and went
    await presence.leave(BurstHandler.handler_name, "room", "s1")
    await presence.join(BurstHandler.handler_name, "room", "s1")  # went and came back
    await flush()
    assert CALLS == [("room", [("joined", "socket:s1")])]  # the interval's net change is none


async def test_a_user_is_one_member_however_many_tabs_join() -> None:
    for sid in ("t1", "t2", "t3"):
        await add(sid, user="7")
    await add("x")
    await presence.join(BurstHandler.handler_name, "room", "x")
    for sid in ("t1", "t2", "t3"):
        await presence.join(BurstHandler.handler_name, "room", sid)
    await flush()
    assert CALLS[1] == ("room", [("joined", "7")])


async def test_the_window_stays_open_while_changes_come_and_closes_when_quiet() -> None:
    for sid in ("s1", "s2", "s3"):
        await add(sid)
    await presence.join(BurstHandler.handler_name, "room", "s1")
    await presence.join(BurstHandler.handler_name, "room", "s2")
    await flush()  # announced s2; a new interval starts
    await presence.join(BurstHandler.handler_name, "room", "s3")
    assert len(CALLS) == 2  # s3 waits for this interval
    await flush()
    await flush()  # a quiet interval: the window closes
    await presence.leave(BurstHandler.handler_name, "room", "s1")  # at once again
    assert [changes for _, changes in CALLS] == [
        [("joined", "socket:s1")],
        [("joined", "socket:s2")],
        [("joined", "socket:s3")],
        [("left", "socket:s1")],
    ]


async def test_groups_are_gathered_apart() -> None:
    await add("s1")
    await presence.join(BurstHandler.handler_name, "a", "s1")
    await presence.join(BurstHandler.handler_name, "b", "s1")
    assert CALLS == [("a", [("joined", "socket:s1")]), ("b", [("joined", "socket:s1")])]


async def test_a_thousand_joins_cost_two_announcements() -> None:
    for i in range(1000):
        await add(f"s{i}")
        await presence.join(BurstHandler.handler_name, "room", f"s{i}")
    await flush()
    assert [len(changes) for _, changes in CALLS] == [1, 999]


async def test_a_failing_hook_is_logged_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    await add("s1", handler=FailingBurstHandler)
    with caplog.at_level(logging.ERROR, logger="wsmanager._presence"):
        await presence.join(FailingBurstHandler.handler_name, "room", "s1")
    assert "on_presence_changes of handler 'tests.presence.burst.failing' failed" in caplog.text


async def test_without_an_interval_the_hook_is_not_called() -> None:
    class Plain(RpcHandler):
        handler_name = "tests.presence.plain"

        @classmethod
        async def on_presence_changes(cls, group: str, changes: list[Change]) -> None:
            CALLS.append((group, []))

    await add("s1", handler=Plain)
    await presence.join(Plain.handler_name, "room", "s1")
    assert CALLS == []
