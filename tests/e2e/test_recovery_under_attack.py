"""Connection recovery under attack (issue 21, items 1, 2, 3 and 8), against real
servers (each in turn), in memory and on a real Redis shared by two processes.

Each test is one finding of an outside probe, reproduced as the probe did it:

1. a resume from ``wsm_offset=0-0``, repeated with each new token, read the
   handler's journal from the session's start every time; a refused resume
   read it too;
2. parked sockets escaped ``max_connections_per_address``, and ``who()``
   listed every one of them;
3. two resumes of one token on one process: the winner lost its live frames,
   and the per-address count lost a socket;
8. ``wsm_offset`` took non-ASCII digits.

Costs are asserted on what is bounded (the bytes and entries a resume reads
from the journal, counted by wsmanager as ``journal_read_bytes``), never on
time. A drop is the client's TCP connection aborted (the server sees 1006);
the tests wait until a process has parked the socket before resuming it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import urlencode

import pytest
import websockets

from tests import redis_support
from tests.e2e.client import cluster_env, http, room_ids, running
from tests.e2e.recovery_app import BURST, CAP
from tests.e2e.test_python_client_recovery_e2e import FAST_RETRY, Inbox
from tests.e2e.test_recovery_e2e import Session
from tests.servers import ServerProcess, server_process
from wsmanager.client import Client, Closed, Recovered, RecoveryFailed
from wsmanager.registry._journal import Entry, key_of
from wsmanager.registry.redis import RedisRegistry

pytestmark = pytest.mark.e2e
redis_url = redis_support.redis_url

APP = "tests.e2e.recovery_app:application"
#: What one resume may read from the journal by default (16 x recovery_max_bytes).
BUDGET = 16 * 128 * 1024
#: A chat line of the demo's largest size, as the journal keeps it.
#: "123-0" in Arabic-Indic digits, which ``str.isdigit`` and ``int`` accept.
ARABIC_INDIC = "\u0661\u0662\u0663-\u0660"
LINE = json.dumps({"jsonrpc": "2.0", "method": "message", "params": {"text": "x" * 2000}})


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def servers(request: pytest.FixtureRequest, server_kind: str) -> Iterator[list[ServerProcess]]:
    """The test app with a 60 s recovery window: one process in memory, two on Redis."""
    window = {"WSMANAGER_RECOVERY_WINDOW": "60", "WSMANAGER_HEARTBEAT": "0.5"}
    if request.param == "memory":
        procs = [server_process(server_kind, app=APP, env={"DEMO_DB": ":memory:", **window})]
    else:
        env = cluster_env(request.getfixturevalue("redis_url"), **window)
        procs = [server_process(server_kind, app=APP, env=env) for _ in range(2)]
    with running(procs) as started:
        yield started


@pytest.fixture(scope="module")
def cluster(redis_url: str, server_kind: str) -> Iterator[list[ServerProcess]]:
    """Two processes of the test app sharing a Redis (a key prefix of their own)."""
    env = cluster_env(redis_url, WSMANAGER_RECOVERY_WINDOW="60", WSMANAGER_HEARTBEAT="0.5")
    with running([server_process(server_kind, app=APP, env=env) for _ in range(2)]) as started:
        yield started


def url(server: ServerProcess, room: str, path: str = "chat", **query: str) -> str:
    suffix = f"?{urlencode(query)}" if query else ""
    return f"{server.ws_url}/ws/{path}/{room}/{suffix}"


def resume_url(server: ServerProcess, room: str, session: Session, offset: str, path: str = "chat") -> str:
    return url(server, room, path, wsm_resume=session.hello["params"]["recovery"]["token"], wsm_offset=offset)


def fresh_room() -> str:
    return f"r{secrets.token_hex(4)}"


async def counters(server: ServerProcess) -> dict[str, int]:
    response = await http("GET", server, "/api/stats")
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()["counters"]
    return counts


async def open_sockets(servers: list[ServerProcess]) -> int:
    """The connections the processes hold open (their nodes' sockets; parked ones are not)."""
    return sum([(await http("GET", server, "/api/stats")).json()["sockets"] for server in servers])


async def total(servers: list[ServerProcess], name: str) -> int:
    return sum([(await counters(server)).get(name, 0) for server in servers])


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    """Wait for a condition (a bound only turns a hang into a failure)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"{what}: still not so after {timeout} s"
        await asyncio.sleep(0.05)


async def closed_with(url_: str) -> tuple[int, str]:
    """The close code and reason of a connection the server accepts and closes at once."""
    ws = await websockets.connect(url_)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return int(closed.value.rcvd.code), closed.value.rcvd.reason


async def drop(session: Session, servers: list[ServerProcess]) -> None:
    """Abort the client's TCP connection and wait until a process has parked the socket."""
    before = await total(servers, "parked")
    session.abort()

    async def parked() -> bool:
        return await total(servers, "parked") > before

    await until(parked, f"socket {session.id} parked")


def journal_of(server: ServerProcess, redis: str) -> RedisRegistry:
    return RedisRegistry(url=redis, prefix=f"{server.env['WSMANAGER_REDIS_PREFIX']}:wsm")


async def fill(server: ServerProcess, redis: str, n: int, room: str = "noise") -> int:
    """Journal ``n`` chat lines of 2,000 characters to another room, as a busy handler
    would; the bytes they weigh."""
    registry = journal_of(server, redis)
    journal = registry.make_journal(10_000)
    try:
        for start in range(0, n, 100):
            batch = min(100, n - start)
            await asyncio.gather(
                *(journal.append("chat", "group", (f"room.{room}",), LINE) for _ in range(batch))
            )
    finally:
        await registry.close()
    return n * Entry("0-0", "group", (f"room.{room}",), LINE).weight


# -- 1. a resume costs what it weighs, whatever the client sends ------------------------------------


@pytest.mark.redis
async def test_resuming_from_offset_zero_again_and_again_reads_the_gap_once(
    cluster: list[ServerProcess], redis_url: str
) -> None:
    """Five resumes in a row (the default burst of one session) from ``0-0``, each with the
    newest token, on either process: the journal's 0.8 MB are read once (the gap of the
    first), not once per resume."""
    room = fresh_room()
    session = await Session.start(url(cluster[0], room))
    weight = await fill(cluster[0], redis_url, 400)
    before = await total(cluster, "journal_read_bytes")
    for i in range(5):
        await drop(session, cluster)
        session = await Session.start(resume_url(cluster[(i + 1) % 2], room, session, "0-0"))
        assert session.hello["params"]["recovered"] is True, session.hello
    read = await total(cluster, "journal_read_bytes") - before
    assert weight <= read <= weight * 1.25, f"5 resumes read {read} bytes of a {weight}-byte gap"
    await session.close()


@pytest.mark.redis
async def test_a_resume_reads_at_most_its_budget_of_the_journal(
    cluster: list[ServerProcess], redis_url: str
) -> None:
    """A handler that journaled 3.2 MB since the drop: the resume reads its budget and stops
    (the gap it could not read whole fails as ``overflow``), never the whole journal."""
    room = fresh_room()
    session = await Session.start(url(cluster[0], room))
    await drop(session, cluster)
    weight = await fill(cluster[0], redis_url, 1600)
    assert weight > 1.5 * BUDGET
    before = await total(cluster, "journal_read_bytes")
    back = await Session.start(resume_url(cluster[1], room, session, "0-0"))
    read = await total(cluster, "journal_read_bytes") - before
    assert back.hello["params"]["recovered"] is False
    assert back.hello["params"]["recovery_failed"] == "overflow"
    assert read <= BUDGET + 2 * len(LINE), f"one resume read {read} bytes"
    await back.close()


@pytest.mark.redis
async def test_a_resume_the_journal_cannot_serve_is_refused_without_reading_it(
    cluster: list[ServerProcess], redis_url: str
) -> None:
    """The journal lost a notification the parked socket missed, then took 1 MB more: the
    resume is refused as ``lost`` having read no entry."""
    room = fresh_room()
    session = await Session.start(url(cluster[0], room))
    await drop(session, cluster)
    registry = journal_of(cluster[0], redis_url)
    journal = registry.make_journal(10_000)
    try:
        missed = await journal.append("chat", "group", (f"room.{room}",), LINE)
        await journal.trim("chat", key_of(missed)[0] + 1)  # gone, as from a journal too short
    finally:
        await registry.close()
    await fill(cluster[0], redis_url, 500)
    before = await total(cluster, "journal_read_bytes")
    back = await Session.start(resume_url(cluster[1], room, session, "0-0"))
    assert back.hello["params"]["recovery_failed"] == "lost", back.hello
    assert await total(cluster, "journal_read_bytes") == before
    await back.close()


async def test_a_session_resumes_at_most_its_burst_then_is_told_to_try_again_later(
    servers: list[ServerProcess],
) -> None:
    """Three resumes in a row of one session (each taking the last over), then a fourth:
    closed with 1013 before anything is read; the connection holding the session keeps it."""
    room = fresh_room()
    session = await Session.start(url(servers[0], room, "session-limited"))
    before = await total(servers, "resume_throttled")
    for i in range(BURST):
        target = servers[(i + 1) % len(servers)]
        session = await Session.start(resume_url(target, room, session, session.highest, "session-limited"))
        assert session.hello["params"]["recovered"] is True, session.hello
    code, reason = await closed_with(
        resume_url(servers[0], room, session, session.highest, "session-limited")
    )
    assert (code, reason) == (1013, "too many resumes")
    assert await total(servers, "resume_throttled") == before + 1
    assert await session.call("send", "still mine") == {"delivered": 1}
    assert (await session.message())["params"]["text"] == "still mine"
    await session.close()


async def test_an_address_resumes_at_most_its_burst_per_process_and_the_tokens_keep(
    servers: list[ServerProcess],
) -> None:
    """Four sessions parked, four resumes from one address on one process: three resume, the
    fourth is closed with 1013 and its session stays parked (on Redis, it resumes on the other
    process, whose budget for the address is its own)."""
    room = fresh_room()
    sessions = [await Session.start(url(servers[0], room, "address-limited")) for _ in range(BURST + 1)]
    for session in sessions:
        await drop(session, servers)
    for session in sessions[:BURST]:
        back = await Session.start(resume_url(servers[0], room, session, session.highest, "address-limited"))
        assert back.hello["params"]["recovered"] is True, back.hello
        await back.close()
    late = sessions[BURST]
    code, reason = await closed_with(resume_url(servers[0], room, late, late.highest, "address-limited"))
    assert (code, reason) == (1013, "too many resumes")
    assert late.id in await room_ids(servers[0], room)  # still parked, its token unspent
    if len(servers) > 1:
        back = await Session.start(resume_url(servers[1], room, late, late.highest, "address-limited"))
        assert back.id == late.id and back.hello["params"]["recovered"] is True, back.hello
        await back.close()


async def test_the_python_client_tries_a_throttled_resume_again_with_its_token(
    servers: list[ServerProcess],
) -> None:
    """The Python client resumes its session three times (the burst); after the fourth drop
    every attempt is closed with 1013: it keeps trying with the same token, never settles
    for a fresh socket, and the session stays parked meanwhile. (A drop: its TCP connection
    aborted under it.)"""
    inbox = Inbox()
    room = fresh_room()
    client = Client(url(servers[0], room, "session-limited"), **inbox.callbacks(), **FAST_RETRY)
    try:
        session = await client.connect()
        for i in range(BURST + 1):
            assert client._ws is not None
            client._ws.transport.abort()
            await inbox.until(lambda i=i: sum(isinstance(e, Closed) for e in inbox.events) > i)
            if i < BURST:
                await inbox.until(lambda i=i: sum(isinstance(e, Recovered) for e in inbox.events) > i)
                assert client.id == session
        throttled = await total(servers, "resume_throttled")

        async def tried_again() -> bool:
            return await total(servers, "resume_throttled") >= throttled + 2

        await until(tried_again, "the client tried again")
        assert not any(isinstance(e, RecoveryFailed) for e in inbox.events), inbox.events
        assert sum(isinstance(e, Recovered) for e in inbox.events) == BURST
        assert client.id is None and session in await room_ids(servers[0], room)
    finally:
        await client.close()


# -- 2. parked sockets count ---------------------------------------------------------------------------


async def test_parked_sockets_count_toward_the_address_cap_and_the_oldest_goes_first(
    servers: list[ServerProcess],
) -> None:
    """12 sockets per address on ``/ws/capped/``: with 4 of them parked, two newcomers take the
    places of the two oldest parked; a resume takes its own place; the cap holds throughout."""
    server, room = servers[0], fresh_room()
    first = [await Session.start(url(server, room, "capped")) for _ in range(CAP)]
    for session in first[:4]:
        await drop(session, servers)
    newcomers = [await Session.start(url(server, room, "capped")) for _ in range(2)]
    expected = {s.id for s in first[2:]} | {s.id for s in newcomers}
    assert await room_ids(server, room) == expected  # the two oldest parked were released

    back = await Session.start(resume_url(server, room, first[2], first[2].highest, "capped"))
    assert back.id == first[2].id and back.hello["params"]["recovered"] is True, back.hello
    assert await room_ids(server, room) == expected  # its own place: nobody else released

    last = await Session.start(url(server, room, "capped"))  # takes the last parked one's place
    assert await room_ids(server, room) == (expected - {first[3].id}) | {last.id}
    assert await closed_with(url(server, room, "capped")) == (
        4429,
        "too many connections",
    )  # none parked, all open
    stale = resume_url(server, room, first[0], first[0].highest, "capped")
    assert await closed_with(stale) == (
        4429,
        "too many connections",
    )  # a released session has no place to give
    for session in [*first[4:], *newcomers, back, last]:
        await session.close()


async def test_who_lists_at_most_100_members_and_count_says_how_many(servers: list[ServerProcess]) -> None:
    """A room of 130: ``who()`` answers 100 of them (fewer when asked), ``count()`` 130."""
    server, room = servers[0], fresh_room()
    peers = []
    for _ in range(5):
        peers += await asyncio.gather(*(Session.start(url(server, room)) for _peer in range(26)))
    first = peers[0]
    members = await first.call("who")
    assert len(members) == 100 and len({m["id"] for m in members}) == 100
    assert {m["id"] for m in members} <= {p.id for p in peers}
    assert len(await first.call("who", 10)) == 10
    assert await first.call("count") == 130
    await asyncio.gather(*(p.close() for p in peers))


# -- 3. one winner per token ----------------------------------------------------------------------------


@pytest.mark.parametrize("spread", [1, 2], ids=["one process", "two processes"])
async def test_of_eight_resumes_of_one_token_one_wins_and_gets_the_live_frames(
    servers: list[ServerProcess], spread: int
) -> None:
    """Five rounds of eight resumes of one token at once: one is told ``recovered`` and gets
    the whisper to the session's id sent right after (before, on one Redis-backed process,
    the losers' attach took the id from it: the whisper was dropped as unknown); the others
    are fresh sockets; a room message reaches all eight; and the address count is exact
    afterwards: new sockets from the address fit exactly up to the cap (a socket parked
    meanwhile gives its place), then 4429."""
    if spread > len(servers):
        pytest.skip("the in-memory registry is one process's")
    targets = servers[:spread]
    room = fresh_room()
    bystander = await Session.start(url(servers[0], room))
    for round_no in range(5):
        victim = await Session.start(url(servers[0], room, "capped"))
        await drop(victim, servers)
        racers = await asyncio.gather(
            *(
                Session.start(resume_url(targets[i % spread], room, victim, victim.highest, "capped"))
                for i in range(8)
            )
        )
        winners = [r for r in racers if r.hello["params"].get("recovered") is True]
        assert [w.id for w in winners] == [victim.id], [r.hello["params"] for r in racers]
        assert all(r.hello["params"]["recovery_failed"] == "unknown" for r in racers if r not in winners)
        assert await bystander.call("whisper", victim.id, f"live {round_no}") == {"delivered": 1}
        message = await winners[0].message()
        assert message["params"]["text"] == f"live {round_no}" and message["params"]["private"] is True
        await bystander.call("send", f"all {round_no}")
        for racer in racers:
            assert (await racer.message())["params"]["text"] == f"all {round_no}"
        await asyncio.gather(*(r.close() for r in racers))

    async def closed() -> bool:  # every racer's end is handled: the bystander is all that is open
        return await open_sockets(servers) == 1

    await until(closed, "the racers' connections ended")
    for server in targets:  # each process counts exactly the bystander (if its) from this address
        held = 1 if server is servers[0] else 0
        kept = [await Session.start(url(server, fresh_room(), "capped")) for _ in range(CAP - held)]
        assert await closed_with(url(server, fresh_room(), "capped")) == (4429, "too many connections")
        await asyncio.gather(*(k.close() for k in kept))
    await bystander.close()


# -- 8. an offset is ASCII digits ------------------------------------------------------------------------


async def test_an_offset_in_other_digits_is_refused_and_the_session_kept(
    servers: list[ServerProcess],
) -> None:
    """``wsm_offset`` in Arabic-Indic digits (which ``int()`` reads): refused, told so; the
    session was not touched and resumes with a well-formed offset."""
    room = fresh_room()
    session = await Session.start(url(servers[0], room))
    await drop(session, servers)
    odd = await Session.start(resume_url(servers[-1], room, session, ARABIC_INDIC))
    assert odd.id != session.id
    assert odd.hello["params"]["recovered"] is False and odd.hello["params"]["recovery_failed"] == "refused"
    back = await Session.start(resume_url(servers[-1], room, session, session.highest))
    assert back.id == session.id and back.hello["params"]["recovered"] is True, back.hello
    await odd.close()
    await back.close()
