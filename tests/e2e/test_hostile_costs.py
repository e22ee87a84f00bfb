"""Hostile input that is cheap to send and must stay cheap to refuse, against a real daphne.

Each case is one of issue 9's findings: a frame of half a million array
members, batches that multiplied every per-frame limit, a result too big
for daphne to write, and errors that wrote a traceback per call to the log.
No test asserts a duration: waits are bounded only to turn a hang into a
failure. What the decoder costs in CPU is measured in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests import redis_support
from tests.e2e.client import Peer, chat_url, cluster_env
from tests.e2e.hostile_app import LENIENT_FRAME
from tests.e2e.stopped_clock import advance
from tests.e2e.test_hostile_input import (
    INVALID_REQUEST,
    RATE_LIMITED,
    SERVER_BUSY,
    closed_with,
    state,
    url,
    watched,
)
from tests.servers import DaphneProcess

pytestmark = pytest.mark.e2e
redis_url = redis_support.redis_url

INTERNAL_ERROR, INVALID_PARAMS = -32603, -32602
#: The issue's frame: 524,287 zeros, just under daphne's 1 MiB.
ZEROS = "[" + ",".join(["0"] * 524_287) + "]"


@pytest.fixture(scope="module")
def server() -> Iterator[DaphneProcess]:
    """One daphne process serving the hostile test app (its own log, read by the log tests)."""
    proc = DaphneProcess(app="tests.e2e.hostile_app:application", env={"DEMO_DB": ":memory:"})
    proc.start()
    yield proc
    proc.stop()


def call(method: str, params: Any = None, msg_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": msg_id}
    if params is not None:
        message["params"] = params
    return message


def note(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


# -- 1. one big frame ---------------------------------------------------------------------------


async def test_half_a_million_zeros_are_one_invalid_request_and_others_are_served(
    server: DaphneProcess,
) -> None:
    """Eight 1 MiB arrays of zeros each get one -32600; a bystander's calls are answered meanwhile."""
    assert len(ZEROS) < LENIENT_FRAME
    async with watched(server, "lenient", "zeros") as bystander:
        attacker = await Peer.open(url(server, "lenient", "zeros"))

        async def flood() -> list[Any]:
            for _ in range(8):
                await attacker.send_raw(ZEROS)
            return [await attacker.recv_json(30) for _ in range(8)]

        attack = asyncio.create_task(flood())
        pongs = 0
        while not attack.done() or pongs < 3:
            assert await bystander.call("rpc.ping") == "pong"
            pongs += 1
        for reply in await attack:
            assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST
            assert reply["error"]["data"] == "at most 100 calls per batch"
        assert await attacker.call("echo", "still open") == "still open"
        await attacker.close()


async def test_rpc_handlers_refuse_frames_over_64_kib_by_default(server: DaphneProcess) -> None:
    """The RpcHandler default is 64 KiB: a frame of 64 KiB is answered, one byte more closes 1009."""
    before = (await state(server))["stats"].get("refused_too_big", 0)
    async with watched(server, "limited", "zeros"):
        peer = await Peer.open(url(server, "limited", "zeros"))
        exact = json.dumps(call("echo", ["y" * 60_000]))
        exact += " " * (64 * 1024 - len(exact))  # exactly 64 KiB: accepted
        await peer.send_raw(exact)
        assert (await peer.recv_json())["id"] == 1
        await peer.send_raw(exact + " ")
        assert await closed_with(peer.ws) == 1009
    assert (await state(server))["stats"]["refused_too_big"] == before + 1


# -- 2. batches are charged per call ---------------------------------------------------------------


async def test_batched_notifications_are_charged_per_call(server: DaphneProcess) -> None:
    """30 batches of 100 ``send`` notifications: whole batches reach the room, far from all 3,000.

    The demo's chat handler keeps the library's rate limit (100 calls/s,
    bursts of 200) and ``max_pending_calls`` (100): a batch that does not
    fit either is refused whole, counted once in ``rate_limited`` or per
    call in ``calls_refused_busy``. The server's buckets run on a stopped
    clock (tests/e2e/stopped_clock.py): no token comes back during the flood,
    however slowly it is read; the test moves the clock on for the marker.
    """
    room = f"batches{secrets.token_hex(3)}"
    before = (await state(server))["stats"]
    listener = await Peer.open(chat_url(server, room))
    attacker = await Peer.open(chat_url(server, room))
    for seq in range(30):
        await attacker.send_raw(json.dumps([note("send", [f"{seq}.{i}"]) for i in range(100)]))
    # Answered only after the server read (and judged) the 30 frames before it.
    probe = (await attacker.request("rpc.ping")).get("error", {}).get("code")
    await advance(server, 3.0)  # the bucket refills: the marker below is not rate limited
    marker_busy = 0
    while (reply := await attacker.request("send", "end")).get("error", {}).get("code") == SERVER_BUSY:
        marker_busy += 1  # the last batch's calls still run: asked again when one is done
        await asyncio.sleep(0.05)
    assert "delivered" in reply["result"], reply
    texts: list[str] = []
    while True:
        message = await listener.notification("message", timeout=10)
        if message["params"]["text"] == "end":
            break
        texts.append(message["params"]["text"])
    batches = sorted({text.split(".")[0] for text in texts}, key=int)
    after = (await state(server))["stats"]
    limited = after.get("rate_limited", 0) - before.get("rate_limited", 0)
    limited -= probe == RATE_LIMITED
    busy = after.get("calls_refused_busy", 0) - before.get("calls_refused_busy", 0)
    busy -= marker_busy + (probe == SERVER_BUSY)
    assert len(texts) == 100 * len(batches), "a batch was split"
    assert 1 <= len(batches) < 30 and limited >= 1  # the rest did not fit the burst of 200
    assert len(batches) + limited + busy / 100 == 30
    await attacker.close()
    await listener.close()


async def test_pending_calls_count_calls_not_frames(server: DaphneProcess) -> None:
    """While a call runs, batches of 100 calls do not fit the 100 pending calls: all -32000."""
    async with watched(server, "lenient", "pending"):
        peer = await Peer.open(url(server, "lenient", "pending"))
        await peer.send_raw(json.dumps(call("nap", [1.0], "nap")))
        for seq in range(5):
            await peer.send_raw(json.dumps([call("echo", [i], f"{seq}.{i}") for i in range(100)]))
        replies: list[Any] = [await peer.recv_json(10) for _ in range(6)]
        batches = [reply for reply in replies if isinstance(reply, list)]
        assert len(batches) == 5
        busy = [b for b in batches if all(r.get("error", {}).get("code") == SERVER_BUSY for r in b)]
        assert busy, "no batch was refused while a call ran"
        assert all(len(b) == 100 for b in batches)
        assert {"jsonrpc": "2.0", "result": 1.0, "id": "nap"} in replies
        await peer.close()


async def test_pending_calls_are_bounded_in_bytes(server: DaphneProcess) -> None:
    """Calls of 200 KB each behind a running call: those past 1 MiB pending get -32000."""
    async with watched(server, "lenient", "bytes"):
        peer = await Peer.open(url(server, "lenient", "bytes"))
        await peer.send_raw(json.dumps(call("nap", [1.0], "nap")))
        text = "b" * 200_000
        for i in range(10):
            await peer.send_raw(json.dumps(call("echo", [text], i)))
        replies = [await peer.recv_json(10) for _ in range(11)]
        busy = [r["id"] for r in replies if r.get("error", {}).get("code") == SERVER_BUSY]
        done = [r["id"] for r in replies if r.get("result") == text]
        assert busy, "every big call was queued"
        assert sorted(busy + done) == list(range(10))
        assert await peer.call("rpc.ping") == "pong"
        await peer.close()


# -- 4. results too big to send ------------------------------------------------------------------


async def test_a_result_too_big_to_send_is_answered_with_an_error(server: DaphneProcess) -> None:
    """A 1.3 MB result gets -32603 "Result too large"; the socket keeps working."""
    async with watched(server, "lenient", "bigresult"):
        peer = await Peer.open(url(server, "lenient", "bigresult"))
        reply = await peer.request("blob", 1_300_000)
        assert reply["error"]["code"] == INTERNAL_ERROR
        assert reply["error"]["message"] == "Result too large"
        assert await peer.call("rpc.ping") == "pong"
        assert len(await peer.call("blob", 100_000)) == 100_000
        # In a batch, the member that would take the answer past the limit gets the error.
        await peer.send_raw(json.dumps([call("blob", [600_000], 1), call("blob", [600_000], 2)]))
        first, second = await peer.recv_json(10)
        assert len(first["result"]) == 600_000
        assert second["error"]["message"] == "Result too large" and second["id"] == 2
        await peer.close()


# -- 5. logs -----------------------------------------------------------------------------------------


def log_lines(server: DaphneProcess, needle: str) -> list[str]:
    return [line for line in server.log_path.read_text(errors="replace").splitlines() if needle in line]


async def logged(server: DaphneProcess, needle: str, copies: int) -> list[str]:
    """The log lines holding ``needle``, once there are ``copies`` of them (the server logs
    the count after the client is gone, one line per logging handler); 20 s at most, which
    only turns a missing line into a failure."""
    deadline = time.monotonic() + 20
    while len(lines := log_lines(server, needle)) < copies:
        assert time.monotonic() < deadline, f"fewer than {copies} log lines hold {needle!r}"
        await asyncio.sleep(0.05)
    return lines


async def test_a_failing_method_logs_once_per_socket_not_once_per_call(server: DaphneProcess) -> None:
    """300 calls that raise: 300 answers -32603, one traceback, and a count of the rest at close.

    The demo's logging writes each record twice (its handler and the root
    logger's): records are counted as lines divided by that.
    """
    async with watched(server, "lenient", "crash"):
        peer = await Peer.open(url(server, "lenient", "crash"))
        replies = []
        for chunk in range(6):  # 50 at a time: within max_pending_calls
            for i in range(50):
                await peer.send_raw(json.dumps(call("crash", None, chunk * 50 + i)))
            replies += [await peer.recv_json(10) for _ in range(50)]
        assert all(r["error"]["code"] == INTERNAL_ERROR for r in replies)
        await peer.close()
    copies = len(log_lines(server, f"RuntimeError: crash on socket {peer.id}"))  # one traceback
    assert copies >= 1
    counted = await logged(server, f"socket {peer.id} closed: 299 more 'method_error' lines", copies)
    assert len(counted) == copies, "the repeats were not counted once"
    assert len(log_lines(server, peer.id)) == 3 * copies  # the error, its traceback's last line, the count


@pytest.mark.redis
async def test_names_the_redis_registry_cannot_store_are_invalid_params(redis_url: str) -> None:
    """A lone surrogate in a name is -32602 on every call, without a traceback per call."""
    with DaphneProcess(env=cluster_env(redis_url, WSMANAGER_LOG="INFO")) as proc:
        peer = await Peer.open(chat_url(proc, "surrogates"))
        replies = []
        for chunk in range(4):  # 50 at a time: within max_pending_calls
            for i in range(50):
                # A member id no Redis key can hold (stored meta escapes it; a key cannot).
                await peer.send_raw(json.dumps(call("whisper", ["\udfff", "hi"], chunk * 50 + i)))
            replies += [await peer.recv_json(10) for _ in range(50)]
        assert all(r["error"]["code"] == INVALID_PARAMS for r in replies), replies[0]
        assert "UTF-8" in replies[0]["error"]["data"]
        assert await peer.call("set_name", "ok") == "ok"
        with contextlib.suppress(websockets.ConnectionClosed):
            await peer.close()
        count = f"socket {peer.id} closed: 199 more 'unstorable' lines"
        copies = len([line for line in log_lines(proc, peer.id) if count not in line])  # the first line
        assert copies >= 1
        assert len(await logged(proc, count, copies)) == copies
        assert log_lines(proc, "Traceback") == []
        assert len(log_lines(proc, peer.id)) == 2 * copies  # the first line and the count
