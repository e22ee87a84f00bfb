"""Streams against every real server (tests/e2e/streams_app.py), through the Python client
and a raw socket: 10,000 items complete and in order; a reader that stops reading stops the
generator at exactly the credit it granted; ``rpc.cancel`` (breaking out, cancelling the
consuming task) and a dropped socket both run the generator's ``finally``; an upload of
10 MB in chunks arrives whole."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.e2e.client import Peer
from tests.servers import (
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
    server_process,
)
from wsmanager_client import connect
from wsmanager_client.protocol import EncodeError
from wsmanager_client.streams import DEFAULT_CREDIT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(server_kind: str) -> Iterator[ServerProcess]:
    app = "tests.e2e.streams_app:application"
    with server_process(server_kind, app=app, env={"DEMO_DB": ":memory:"}) as process:
        yield process


def url(server: ServerProcess) -> str:
    return f"{server.ws_url}/ws/streams/"


async def items_of(peer: Peer, count: int) -> list[Any]:
    return [(await peer.notification("rpc.stream.item"))["params"]["item"] for _ in range(count)]


def fresh() -> str:
    return uuid.uuid4().hex


async def test_ten_thousand_items_arrive_complete_and_in_order(server: ServerProcess) -> None:
    name = fresh()
    async with connect(url(server), timeout=20) as client:
        items = [item async for item in client.stream("count", 10_000, name)]
        assert items == list(range(10_000))
        assert await client.invoke("report", name) == {"produced": 10_000, "closed": True}


async def test_a_reader_that_stops_reading_stops_the_generator_at_its_credit(server: ServerProcess) -> None:
    name = fresh()
    peer = await Peer.open(url(server))
    try:
        await peer.send_raw(
            json.dumps({"jsonrpc": "2.0", "method": "count", "params": [10**9, name], "id": "s"})
        )
        items = [
            (await peer.notification("rpc.stream.item"))["params"]["item"] for _ in range(DEFAULT_CREDIT)
        ]
        assert items == list(range(DEFAULT_CREDIT))
        # Round trips: the server had every chance to run ahead, and did not.
        for _ in range(3):
            assert await peer.call("rpc.ping") == "pong"
            assert await peer.call("report", name) == {"produced": DEFAULT_CREDIT, "closed": False}
        grant = {"jsonrpc": "2.0", "method": "rpc.stream.credit", "params": {"id": "s", "n": 5}}
        await peer.send_raw(json.dumps(grant))
        assert await items_of(peer, 5) == list(range(DEFAULT_CREDIT, DEFAULT_CREDIT + 5))
        assert await peer.call("report", name) == {"produced": DEFAULT_CREDIT + 5, "closed": False}
    finally:
        await peer.close()


async def test_breaking_out_cancels_the_stream_and_runs_its_finally(server: ServerProcess) -> None:
    name = fresh()
    async with connect(url(server), timeout=20) as client:
        async with contextlib.aclosing(client.stream("count", 10**9, name)) as items:
            async for item in items:
                if item == 100:
                    break
        assert await client.invoke("until_closed", name) is True
        report = await client.invoke("report", name)
        assert report["closed"] and 100 < report["produced"] <= 100 + 64 + 1  # at most a window ahead
        assert [item async for item in client.stream("count", 3, fresh())] == [0, 1, 2]  # the socket goes on


async def test_a_bare_break_cancels_the_stream_too(server: ServerProcess) -> None:
    """Without ``aclosing``: CPython finalizes the dropped iterator at once, and asyncio's
    async-generator hook closes it (the client then sends ``rpc.cancel``)."""
    name = fresh()
    async with connect(url(server), timeout=20) as client:
        async for item in client.stream("count", 10**9, name):
            if item == 10:
                break
        assert await client.invoke("until_closed", name) is True


async def test_cancelling_the_consuming_task_cancels_the_stream(server: ServerProcess) -> None:
    name = fresh()
    async with connect(url(server), timeout=20) as client:
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in client.stream("count", 10**9, name):
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await client.invoke("until_closed", name) is True


async def test_a_dropped_socket_runs_the_generators_finally(server: ServerProcess) -> None:
    name = fresh()
    peer = await Peer.open(url(server))
    await peer.send_raw(json.dumps({"jsonrpc": "2.0", "method": "count", "params": [10**9, name], "id": 1}))
    await peer.notification("rpc.stream.item")
    peer.ws.transport.abort()  # no close frame: the connection is just lost
    async with connect(url(server), timeout=20) as client:
        assert await client.invoke("until_closed", name) is True
        assert (await client.invoke("report", name))["produced"] == DEFAULT_CREDIT


async def test_an_upload_of_ten_megabytes_in_chunks_arrives_whole(server: ServerProcess) -> None:
    """10 MB as 320 chunks of 32 KiB (under the handler's 64 KiB frames), paced by the server's credit."""
    chunk = 32 * 1024
    data = "".join(chr(ord("a") + i % 26) for i in range(26)) * (10 * 1024 * 1024 // 26 + 1)
    data = data[: 10 * 1024 * 1024]
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]

    async def produce() -> AsyncIterator[str]:
        for piece in chunks:
            yield piece

    async with connect(url(server), timeout=60) as client:
        answer = await client.upload("digest", produce())
    assert answer == {
        "chunks": len(chunks),
        "size": len(data),
        "sha256": hashlib.sha256(data.encode()).hexdigest(),
    }


@pytest.mark.parametrize("failure", ["raises", "not JSON"])
async def test_an_upload_whose_items_fail_is_cancelled_and_the_socket_goes_on(
    server: ServerProcess, failure: str
) -> None:
    """The items raise (or one is not JSON): the call fails with that, the client cancels the
    upload, so the server's method stops waiting and the socket's next call (max_concurrent_calls
    1: it waits for the upload's method) is answered."""

    async def produce() -> AsyncIterator[Any]:
        yield "one"
        if failure == "raises":
            raise OSError("disk read failed")
        yield object()

    async with connect(url(server), timeout=10) as client:
        with pytest.raises(OSError if failure == "raises" else EncodeError):
            await client.upload("digest", produce())
        assert await client.invoke("report", fresh()) == {"produced": None, "closed": False}


@pytest.mark.parametrize("window", [1, 16, 64, 300])
async def test_any_window_completes_whatever_the_handlers_credit_settings(
    server: ServerProcess, window: int
) -> None:
    """stream_credit 4 and max_stream_credit 16 (announced by the first item): a window past
    twice the cap, the default one and one below the initial credit all get every item."""
    name = fresh()
    async with connect(f"{server.ws_url}/ws/streams-tight/", timeout=20) as client:
        items = [item async for item in client.stream("count", 1000, name, window=window)]
        assert items == list(range(1000))


async def stalled_reader(server: ServerProcess, total: int, size: int, name: str) -> Peer:
    """A socket on /ws/streams-wide/ with a 64 KiB receive buffer (no autotuning up to tens of
    MB: the kernel holds little) that calls ``blobs``, takes the first item, stops reading TCP,
    and then grants all the credit it may."""
    address = urllib.parse.urlsplit(server.ws_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect((address.hostname, address.port))
    sock.setblocking(False)
    # No permessage-deflate: the blobs would compress to nothing and fit any buffer.
    peer = await Peer.open(
        f"{server.ws_url}/ws/streams-wide/", max_size=2 * size, sock=sock, compression=None
    )
    await peer.send_raw(
        json.dumps({"jsonrpc": "2.0", "method": "blobs", "params": [total, size, name], "id": "b"})
    )
    await peer.notification("rpc.stream.item")
    peer.ws.transport.pause_reading()  # nothing more is read from the socket
    grant = {"jsonrpc": "2.0", "method": "rpc.stream.credit", "params": {"id": "b", "n": 10**6}}
    await peer.send_raw(json.dumps(grant))
    return peer


async def settled(observer: Any, name: str) -> dict[str, Any]:
    """The generator's report once it stops changing: the same over three reads 0.3 s apart."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 30
    while len(seen) < 3 or any(report != seen[-1] for report in seen[-3:]):
        assert asyncio.get_running_loop().time() < deadline, seen
        seen.append(await observer.invoke("report", name))
        await asyncio.sleep(0.3)
    return seen[-1]


async def read_rest(peer: Peer, credit: bool) -> tuple[int, dict[str, Any]]:
    """Reading again: the items after the first (granting one more credit each when ``credit``)
    and the message that ends them; how many items in all, and that message."""
    peer.ws.transport.resume_reading()
    received = 1
    while True:
        message = await peer.recv_json()
        if message.get("method") != "rpc.stream.item":
            return received, message
        received += 1
        if credit:
            more = {"jsonrpc": "2.0", "method": "rpc.stream.credit", "params": {"id": "b", "n": 1}}
            await peer.send_raw(json.dumps(more))


async def test_a_reader_that_grants_credit_but_stops_reading_tcp_stops_the_generator(
    server: ServerProcess,
) -> None:
    """/ws/streams-wide/ (max_stream_credit 1000): the client grants all the credit it may
    (1016 items of 32 KiB: 32 MB) and then stops reading its TCP socket. The server waits for
    its send backlog to drain before each next item, so the generator stops far short of the
    credit (at what the kernel's buffers and the 64 KiB backlog hold: the server's memory stays
    bounded, and under max_send_backlog, so the socket is not closed as too slow), and goes on
    once the client reads again."""
    name, size, total = fresh(), 32 * 1024, 1100
    credit_bound = DEFAULT_CREDIT + 1000  # the first credit and the cap
    peer = await stalled_reader(server, total, size, name)
    try:
        async with connect(f"{server.ws_url}/ws/streams-wide/", timeout=20) as observer:
            produced = (await settled(observer, name))["produced"]
            assert produced < credit_bound // 2, (produced, "the credit, not the backlog, stopped it")
            received, message = await read_rest(peer, credit=True)
            assert message == {"jsonrpc": "2.0", "result": {"items": total}, "id": "b"}
            assert received == total
            assert await observer.invoke("report", name) == {"produced": total, "closed": True}
            print(f"stalled reader: the generator stopped at {produced} of {credit_bound} items")
    finally:
        await peer.close()


async def test_items_under_max_send_backlog_less_64_kib_pause_a_stalled_reader_never_close_it(
    server: ServerProcess,
) -> None:
    """Items of 176 KiB (max_send_backlog 256 KiB less the 64 KiB the stream drains to, less
    16 KiB) to a reader that grants credit and stops reading TCP: each next item is put only once
    the backlog is at most 64 KiB, so it never takes the backlog over max_send_backlog: the
    generator pauses, the socket stays open, and every item arrives once the client reads.
    (Larger items may close such a reader 1013 "too slow": docs/protocol.md section 14.)"""
    name, size, total = fresh(), 176 * 1024, 150
    peer = await stalled_reader(server, total, size, name)
    try:
        async with connect(f"{server.ws_url}/ws/streams-wide/", timeout=20) as observer:
            report = await settled(observer, name)
            assert report["closed"] is False and report["produced"] < total, report
            received, message = await read_rest(peer, credit=False)
            assert message == {"jsonrpc": "2.0", "result": {"items": total}, "id": "b"}
            assert received == total
            print(f"176 KiB items, stalled reader: the generator paused at {report['produced']} of {total}")
    finally:
        await peer.close()
