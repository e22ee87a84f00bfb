"""What the failover tests (Redis Sentinel, Redis Cluster) share: numbered
whispers between two sockets of different processes, numbered HTTP posts, and
polling a condition with a deadline that only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import websockets

from tests.e2e.client import Peer, chat_url, http, http_client

__all__ = ["DEADLINE", "Posts", "Traffic", "after_failover", "before_failover", "stats", "until", "who_is"]

T = TypeVar("T")
#: How long the test waits for any one condition: a hang becomes a failure, nothing more.
DEADLINE = 60.0


async def until(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Retry ``probe`` until it returns something truthy (errors count as not yet)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            result = await probe()
        except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake, TimeoutError):
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE} s"
        await asyncio.sleep(0.05)


class Traffic:
    """Whispers between two sockets of different processes, one at a time, numbered."""

    def __init__(self, a: Peer, b: Peer) -> None:
        self.a, self.b = a, b
        self.sent: dict[str, str] = {}  # text -> "ok" or the error's code
        self.round = 0
        self.got: set[str] = set()  # texts read on either socket

    async def one_round(self) -> bool:
        """A whisper each way and a ping on each socket; True when both whispers were taken."""
        ok = True
        for sender, to in ((self.a, self.b), (self.b, self.a)):
            self.round += 1
            text = f"m{self.round}"
            reply = await sender.request("whisper", to.id, text)
            self.sent[text] = "ok" if "result" in reply else str(reply["error"]["code"])
            ok = ok and "result" in reply
            # An open socket answers a ping whatever Redis does: no registry call behind it.
            assert await sender.call("rpc.ping") == "pong"
        return ok

    async def until_text(self, peer: Peer, text: str) -> None:
        """Read ``peer``'s messages until the one saying ``text``, into ``got``."""
        seen = {m["params"]["text"] for m in peer.inbox if m.get("method") == "message"}
        peer.inbox = type(peer.inbox)(m for m in peer.inbox if m.get("method") != "message")
        while text not in seen:
            seen.add((await peer.notification("message"))["params"]["text"])
        self.got |= seen


class Posts:
    """``POST /api/sockets/<to>/messages`` through ``server``, numbered, until stopped."""

    def __init__(self, server: Any, to: str) -> None:
        self.server, self.to = server, to
        self.outcomes: dict[str, tuple[int, float]] = {}  # text -> (HTTP status or 0, answered at)
        self.stop = False
        self.count = 0

    async def run(self) -> None:
        async with http_client(self.server, timeout=30) as client:
            while not self.stop:
                self.count += 1
                text = f"p{self.count}"
                try:
                    response = await client.post(f"/api/sockets/{self.to}/messages", json={"text": text})
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                self.outcomes[text] = (status, time.monotonic())
                await asyncio.sleep(0)

    def taken(self) -> int:
        """How many were taken (202)."""
        return sum(1 for status, _ in self.outcomes.values() if status == 202)

    async def taken_at_least(self, least: int) -> bool:
        return self.taken() >= least


async def who_is(peer: Peer, ids: set[str]) -> list[dict[str, Any]] | None:
    """``who`` on ``peer``'s room when it lists exactly ``ids``; None otherwise."""
    reply = await peer.request("who")
    if "result" not in reply:
        return None
    members: list[dict[str, Any]] = reply["result"]
    return members if {m["id"] for m in members} == ids else None


async def stats(server: Any) -> dict[str, Any]:
    """The demo's ``GET /api/stats`` of ``server``."""
    response = await http("GET", server, "/api/stats")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def before_failover(one: Any, two: Any, room: str) -> tuple[Traffic, Posts, list[asyncio.Task[None]]]:
    """A socket on ``one`` and one on ``two`` in ``room`` whispering (a first round each
    way, heard), and four tasks posting to the second through ``one``, several at once so
    that some are on their way when Redis fails: once 20 were taken. Returns the traffic,
    the posts and the posting tasks (stop them with ``posts.stop = True``)."""
    a = await Peer.open(chat_url(one, room))
    b = await Peer.open(chat_url(two, room))
    traffic = Traffic(a, b)
    assert await traffic.one_round()
    await traffic.until_text(b, "m1")
    await traffic.until_text(a, "m2")
    posts = Posts(one, b.id)
    burst = [asyncio.create_task(posts.run()) for _ in range(4)]
    await until(lambda: posts.taken_at_least(20), "20 posts taken before Redis fails")
    return traffic, posts, burst


async def after_failover(traffic: Traffic, one: Any, two: Any, room: str) -> tuple[Peer, Peer]:
    """What must hold once Redis has failed over, with ``traffic`` between a socket on
    ``one`` and one on ``two`` and posts to the second through ``one``: a new socket opens
    on each process, ``who`` lists exactly the four sockets from both, each process
    counts its two and is ready, whispers work both ways, and a last whisper from each
    sender and a last post arrive (FIFO per sender and socket: everything still coming
    from them is in by then). Returns the two new sockets."""
    a, b = traffic.a, traffic.b
    c = await until(lambda: Peer.open(chat_url(one, room)), f"a new socket on {one.kind}")
    d = await until(lambda: Peer.open(chat_url(two, room)), f"a new socket on {two.kind}")
    everyone = {a.id, b.id, c.id, d.id}
    # The registry lists exactly the open sockets (the heartbeat re-adds any that the
    # failover lost), from both processes.
    await until(lambda: who_is(a, everyone), f"who lists the four sockets on {one.kind}")
    await until(lambda: who_is(d, everyone), f"who lists the four sockets on {two.kind}")
    for server in (one, two):
        assert (await stats(server))["sockets"] == 2
        # Readiness pings the registry and the channel layer, through the failover's new primary.
        ready = await http("GET", server, "/readyz")
        assert ready.status_code == 200, ready.text
    await c.call("whisper", d.id, "after")
    await traffic.until_text(d, "after")
    await d.call("whisper", a.id, "after too")
    await traffic.until_text(a, "after too")
    await a.call("whisper", b.id, "last")
    await b.call("whisper", a.id, "last")
    await traffic.until_text(a, "last")
    await traffic.until_text(b, "last")
    last = await http("POST", one, f"/api/sockets/{b.id}/messages", json={"text": "p-last"})
    assert last.status_code == 202, last.text
    await traffic.until_text(b, "p-last")
    return c, d
