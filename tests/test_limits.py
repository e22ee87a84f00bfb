"""Limits: the token bucket, rate limits (raw and RPC), per-method permissions, and
closing with the limits' codes on a daphne-like server (``wsmanager.connection._limits``;
the daphne adapter itself is tested in tests/test_servers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, Permission, User

from tests import limit_handlers
from tests.fake_daphne import FakeProtocol, daphne_send
from tests.limit_handlers import (
    FakeUser,
    LimitedEchoHandler,
    LimitedRpcHandler,
    application,
    client,
    receive_close,
)
from wsmanager import RemoteError
from wsmanager import _db as wsmanager_db
from wsmanager.connection import _limits as limits
from wsmanager.connection._limits import Intake, IntakeVerdict, TokenBucket
from wsmanager.observe import _counters as counters
from wsmanager.testing import RpcCommunicator
from wsmanager_client.protocol import FORBIDDEN, RATE_LIMITED


class FakeClock:
    """Stands in for the ``time`` module of wsmanager.connection._limits: a clock that moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A frozen clock for every token bucket (the event loop keeps the real one)."""
    fake = FakeClock()
    monkeypatch.setattr(limits, "time", fake)
    return fake


_clean_events = pytest.fixture(autouse=True)(limit_handlers.clean_events)


def rpc_client(path: str, user: Any = None) -> RpcCommunicator:
    comm = RpcCommunicator(application, path, timeout=2.0)
    if user is not None:
        comm.scope["user"] = user
    return comm


# -- the token bucket ---------------------------------------------------------------------------


def test_bucket_allows_a_full_burst_then_refuses(clock: FakeClock) -> None:
    """A new bucket lets ``burst`` messages through at once, then refuses."""
    bucket = TokenBucket(rate=1.0, burst=3.0)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.take() is False


def test_bucket_refills_at_its_rate(clock: FakeClock) -> None:
    """Tokens come back at ``rate`` per second, fractions included."""
    bucket = TokenBucket(rate=2.0, burst=2.0)
    assert [bucket.take(), bucket.take(), bucket.take()] == [True, True, False]
    clock.advance(0.25)
    assert bucket.take() is False  # half a token
    clock.advance(0.25)
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.advance(1.0)
    assert [bucket.take(), bucket.take(), bucket.take()] == [True, True, False]


def test_bucket_never_holds_more_than_its_burst(clock: FakeClock) -> None:
    """However long a bucket stays idle, it holds at most ``burst`` tokens."""
    bucket = TokenBucket(rate=100.0, burst=5.0)
    clock.advance(3600)
    assert sum(bucket.take() for _ in range(20)) == 5


def test_refused_attempts_do_not_spend_tokens(clock: FakeClock) -> None:
    """Refusals cost nothing: the next token arrives on schedule."""
    bucket = TokenBucket(rate=1.0, burst=1.0)
    assert bucket.take() is True
    for _ in range(6):
        clock.advance(0.125)
        assert bucket.take() is False
    clock.advance(0.25)
    assert bucket.take() is True


def test_free_frames_between_refused_ones_do_not_clear_the_strikes(clock: FakeClock) -> None:
    """A frame that costs nothing (a stream grant that does its work) is let through without
    touching the strikes: one free frame after every 3 refused ones still strikes out at the 5th refusal."""
    intake = Intake(None, (1.0, 1.0), strikes=5)
    costs = iter([1] + [1, 1, 1, 0] * 2)
    verdicts = [intake.check("x", lambda _data: next(costs)) for _ in range(9)]
    ok, limited, out = IntakeVerdict.OK, IntakeVerdict.LIMITED, IntakeVerdict.STRUCK_OUT
    assert verdicts == [ok, limited, limited, limited, ok, limited, out, out, ok]


def test_a_cost_is_taken_whole_or_not_at_all(clock: FakeClock) -> None:
    """take(n) spends n tokens when there are n; a refused cost spends none, smaller ones still fit."""
    bucket = TokenBucket(rate=10.0, burst=10.0)
    assert bucket.take(7) is True
    assert bucket.take(4) is False
    assert bucket.take(3) is True
    assert bucket.take(1) is False
    clock.advance(0.5)
    assert [bucket.take(5), bucket.take(1)] == [True, False]


def test_a_cost_above_the_burst_never_fits(clock: FakeClock) -> None:
    """However long the bucket stays idle, a cost over its burst is refused."""
    bucket = TokenBucket(rate=100.0, burst=5.0)
    clock.advance(3600)
    assert bucket.take(6) is False
    assert bucket.take(5) is True


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (-1.0, 5.0), (1.0, 0.5), (1.0, 0.0)])
def test_bucket_rejects_impossible_settings(rate: float, burst: float) -> None:
    """rate <= 0 or burst < 1 raise ValueError at construction."""
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        TokenBucket(rate, burst)


# -- rate limits --------------------------------------------------------------------------------


async def test_raw_handler_drops_frames_over_the_rate_and_counts_them(clock: FakeClock) -> None:
    """Past the burst, frames are dropped (not echoed) and counted; refilled tokens let them through."""
    comm = client("/ws/limited-echo/")
    assert (await comm.connect())[0]
    for i in range(3):
        await comm.send_to(text_data=f"m{i}")
        assert await comm.receive_from() == f"m{i}"
    await comm.send_to(text_data="over")
    await comm.send_to(bytes_data=b"over too")
    assert await comm.receive_nothing()
    assert counters.stats().get("rate_limited", 0) == 2
    clock.advance(1.0)
    await comm.send_to(text_data="refilled")
    assert await comm.receive_from() == "refilled"
    assert await LimitedEchoHandler.manager.acount() == 1
    await comm.disconnect()


async def test_persistent_flooding_closes_1008(clock: FakeClock) -> None:
    """``rate_limit_strikes`` refusals in a row close the socket with 1008 and free its entry."""
    comm = client("/ws/limited-echo/")
    assert (await comm.connect())[0]
    for i in range(3 + 5):
        await comm.send_to(text_data=str(i))
    assert [await comm.receive_from() for _ in range(3)] == ["0", "1", "2"]
    close = await receive_close(comm)
    assert (close["code"], close.get("reason")) == (1008, "rate limit exceeded")
    assert type(close["code"]) is int
    assert counters.stats().get("rate_limited", 0) == 5
    assert await LimitedEchoHandler.manager.acount() == 0
    await comm.send_to(text_data="after the close")
    assert await comm.receive_nothing()
    await comm.disconnect(1008)


async def test_an_accepted_frame_resets_the_strikes(clock: FakeClock) -> None:
    """Refusals only count in a row: one accepted frame starts the count again."""
    comm = client("/ws/limited-echo/")
    assert (await comm.connect())[0]
    for i in range(3):
        await comm.send_to(text_data=str(i))
        await comm.receive_from()
    for _ in range(4):
        await comm.send_to(text_data="refused")
    assert await comm.receive_nothing()  # all four refused before the clock moves
    clock.advance(1.0)
    await comm.send_to(text_data="accepted")
    assert await comm.receive_from() == "accepted"
    for _ in range(4):
        await comm.send_to(text_data="refused")
    assert await comm.receive_nothing()
    await comm.send_to(text_data="fifth in a row")
    assert (await receive_close(comm))["code"] == 1008
    await comm.disconnect(1008)


async def test_rpc_calls_over_the_rate_get_32002_each(clock: FakeClock) -> None:
    """An RPC handler answers each refused call with -32002 under its id; notifications get nothing."""
    async with rpc_client("/ws/limited-rpc/") as comm:
        # rpc.connected is sent by the server; the client's three frames use the burst.
        assert [await comm.call("echo", i) for i in range(3)] == [0, 1, 2]
        reply = await comm.request("echo", "over")
        assert reply["error"]["code"] == RATE_LIMITED
        assert reply["error"]["message"] == "Rate limit exceeded"
        assert reply["id"] == 4
        await comm.notify("echo", "note")
        assert await comm.receive_nothing()
        batch = [
            {"jsonrpc": "2.0", "method": "echo", "params": [1], "id": "a"},
            {"jsonrpc": "2.0", "method": "echo", "params": [2]},
            {"jsonrpc": "2.0", "method": "echo", "params": [3], "id": "b"},
        ]
        await comm.send_json_to(batch)
        answers = await comm.receive_json_from()
        assert [(a["id"], a["error"]["code"]) for a in answers] == [("a", RATE_LIMITED), ("b", RATE_LIMITED)]
        await comm.send_to(bytes_data=b"binary")
        assert await comm.receive_nothing()
        assert counters.stats().get("rate_limited", 0) == 4
        clock.advance(1.0)
        assert await comm.call("echo", "again") == "again"
        await comm.send_to(text_data="not json")
        assert await comm.receive_nothing()
        assert counters.stats().get("rate_limited", 0) == 5


async def test_rpc_flooding_closes_1008(clock: FakeClock) -> None:
    """An RPC socket that keeps flooding gets 4 x -32002, then the fifth refusal closes it with 1008."""
    comm = rpc_client("/ws/limited-rpc/")
    assert (await comm.connect())[0]
    assert [await comm.call("echo", i) for i in range(3)] == [0, 1, 2]
    for i in range(5):
        await comm.send_json_to({"jsonrpc": "2.0", "method": "echo", "params": [i], "id": i})
    answers = [await comm.receive_json_from() for _ in range(4)]
    assert [(a["id"], a["error"]["code"]) for a in answers] == [(i, RATE_LIMITED) for i in range(4)]
    assert (await receive_close(comm))["code"] == 1008
    assert await LimitedRpcHandler.manager.acount() == 0
    await comm.disconnect(1008)


# -- per-method permissions ------------------------------------------------------------------------


async def forbidden(comm: RpcCommunicator, method: str) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await comm.call(method)
    assert (info.value.code, info.value.message) == (FORBIDDEN, "Forbidden")
    return info.value


def make_user(name: str, *, perm: bool = False, **fields: Any) -> User:
    user = User.objects.create_user(name, **fields)
    if perm:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="auth", codename="view_user")
        )
    return User.objects.get(pk=user.pk)  # fresh: no cached permissions


@pytest.fixture
def _forget_db_use() -> Iterator[None]:
    """Clear wsmanager.db's "a connection was opened" mark after the test.

    The in-memory test database ignores close(), so the mark would stay set and
    send later database-less tests to close_old_connections, which
    pytest-django refuses outside ``django_db`` tests.
    """
    yield
    wsmanager_db._used = False


async def permission_scenario(allowed: list[Any], refused: list[Any]) -> None:
    """Allowed users run both guarded methods; refused ones get -32003 for both."""
    for user in allowed:
        async with rpc_client("/ws/guarded/any/", user) as comm:
            assert await comm.call("list_users") == "users"
            assert await comm.call("list_users_sync") == "users"
    for user in refused:
        async with rpc_client("/ws/guarded/any/", user) as comm:
            for method in ("list_users", "list_users_sync"):
                err = await forbidden(comm, method)
                assert err.data == {"method": method, "reason": "requires the permission 'auth.view_user'"}
            assert await comm.call("public") == "public"


@pytest.mark.django_db
@pytest.mark.usefixtures("_forget_db_use")
def test_django_permission_allows_holders_and_refuses_others() -> None:
    """``permission="auth.view_user"`` runs for holders and superusers; others get -32003."""
    # A sync test driving the handlers through async_to_sync: the permission
    # checks then run in this thread, inside the test's transaction.
    holder = make_user("holder", perm=True)
    boss = make_user("boss", is_superuser=True)
    plain = make_user("plain")
    inactive = make_user("gone", perm=True, is_active=False)
    async_to_sync(permission_scenario)([holder, boss], [plain, inactive, AnonymousUser(), None])
    assert limit_handlers.events == [("ran", "list_users"), ("ran", "list_users_sync")] * 2


async def test_sync_callable_permission() -> None:
    """A plain function permission decides per call; a refusal names the function."""
    async with rpc_client("/ws/guarded/any/", FakeUser(1, is_staff=True)) as comm:
        assert await comm.call("staff_report") == "report"
    async with rpc_client("/ws/guarded/any/", FakeUser(2)) as comm:
        err = await forbidden(comm, "staff_report")
        assert err.data == {"method": "staff_report", "reason": "refused by staff_only"}
    assert limit_handlers.events == [("ran", "staff_report")]


async def test_async_callable_permission() -> None:
    """A coroutine function permission is awaited; a refusal names the function."""
    async with rpc_client("/ws/guarded/mine/") as comm:
        assert await comm.call("room_secret") == "secret"
    async with rpc_client("/ws/guarded/yours/") as comm:
        err = await forbidden(comm, "room_secret")
        assert err.data == {"method": "room_secret", "reason": "refused by in_own_room"}
    assert limit_handlers.events == [("ran", "room_secret")]


async def test_refused_notification_gets_no_answer_and_does_not_run() -> None:
    """A notification to a guarded method is refused silently."""
    async with rpc_client("/ws/guarded/yours/", FakeUser(3)) as comm:
        await comm.notify("staff_report")
        await comm.notify("room_secret")
        assert await comm.receive_nothing()
        reply = await comm.request("staff_report")
        assert reply["error"]["code"] == FORBIDDEN
    assert limit_handlers.events == []
    assert counters.stats().get("calls_refused_permission", 0) == 3  # notifications are counted too


# -- closing with a code daphne refuses through ASGI -------------------------------------------


async def run_on_fake_daphne(path: str, frames: int, send: Any) -> None:
    """Connect with ``send`` as the server's, push ``frames`` text frames, wait for the close, disconnect."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "websocket", "path": path, "headers": [], "query_string": b"", "subprotocols": []}
    task = asyncio.create_task(application(scope, inbox.get, send))
    await inbox.put({"type": "websocket.connect"})
    for i in range(frames):
        await inbox.put({"type": "websocket.receive", "text": str(i)})
    # Poll (the registry announces nothing to await): every frame taken and the socket gone.
    async with asyncio.timeout(5):  # only turns a hang into a failure
        while not inbox.empty() or await LimitedEchoHandler.manager.acount():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await inbox.put({"type": "websocket.disconnect", "code": 1006})
    await asyncio.wait_for(task, 2)


async def test_close_code_refused_by_daphne_is_written_on_its_protocol(clock: FakeClock) -> None:
    """1008 goes out as a close frame on the protocol when daphne's send refuses it; the entry is freed."""
    protocol, sent = FakeProtocol(), []
    await run_on_fake_daphne("/ws/limited-echo/", 3 + 5, daphne_send(protocol, sent))
    assert [m["type"] for m in sent] == ["websocket.accept"] + ["websocket.send"] * 3
    assert protocol.close_frames == [(1008, b"rate limit exceeded", False)]
    assert await LimitedEchoHandler.manager.acount() == 0


async def test_close_that_cannot_be_sent_still_frees_the_socket(clock: FakeClock) -> None:
    """A server that refuses the close and has no protocol to fall back on: logged, entry freed."""
    sent: list[dict[str, Any]] = []

    async def refusing_send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close":
            raise RuntimeError("this server cannot close with that code")
        sent.append(message)

    await run_on_fake_daphne("/ws/limited-echo/", 3 + 5, refusing_send)
    assert [m["type"] for m in sent] == ["websocket.accept"] + ["websocket.send"] * 3
    assert await LimitedEchoHandler.manager.acount() == 0


# -- frame size ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "limit", "over"),
    [
        (b"x" * 10, 10, False),
        (b"x" * 11, 10, True),
        ("x" * 10, 10, False),
        ("é" * 5, 10, False),  # 10 bytes of UTF-8
        ("é" * 6, 10, True),  # 12 bytes, though only 6 characters
        ("€" * 4, 12, False),  # 3 bytes each
        ("\ud800", 2, True),  # a lone surrogate counts as its 3 encoded bytes
        (b"x" * 10**6, None, False),
    ],
)
def test_frame_size_counts_utf8_bytes_of_text(data: str | bytes, limit: int | None, over: bool) -> None:
    """too_big() compares bytes (text as UTF-8) with the limit; None never is too big."""
    assert limits.too_big(data, limit) is over
