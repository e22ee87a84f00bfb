"""Prometheus metrics after real traffic: a real daphne serving the demo, real clients,
and the ``/metrics`` text read with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from demo_chat.handlers import ChatHandler
from tests.e2e.client import Peer, chat_url, http
from tests.e2e.servers_app import SMALL_FRAME
from tests.servers import DaphneProcess, GunicornUvicornProcess, ServerProcess
from wsmanager.ops.metrics import DROP_REASONS

pytestmark = pytest.mark.e2e

CHAT = ChatHandler.handler_name
TOKEN = "metrics-test-token"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def server() -> Iterator[DaphneProcess]:
    """The demo with DEBUG off: /metrics then needs the API token, as the API does. Its
    token buckets run on a stopped clock (tests/e2e/stopped_clock.py): a burst is refused
    the same however slowly it is read."""
    proc = DaphneProcess(
        app="tests.e2e.clocked_demo:application",
        env={
            "DEMO_DB": ":memory:",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "metrics-e2e-not-the-placeholder",
            "DEMO_API_TOKEN": TOKEN,
        },
    )
    proc.start()
    yield proc
    proc.stop()


async def scrape(server: ServerProcess) -> Samples:
    response = await http("GET", server, "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until_value(
    server: ServerProcess, expected: float, name: str, wait: float = 10, **labels: str
) -> Samples:
    """Scrape until the sample has the expected value (the server handles a close after the client)."""
    deadline = time.monotonic() + wait
    while True:
        samples = await scrape(server)
        if value(samples, name, **labels) == expected:
            return samples
        assert time.monotonic() < deadline, (
            f"{name}{labels} is {value(samples, name, **labels)}, not {expected}"
        )
        await asyncio.sleep(0.05)


async def test_metrics_need_the_api_access_rule_with_debug_off(server: DaphneProcess) -> None:
    """Anonymous: 403 JSON, like the API; a wrong token: 403."""
    anonymous = await http("GET", server, "/metrics")
    assert anonymous.status_code == 403
    assert "error" in anonymous.json()
    wrong = await http("GET", server, "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403


async def test_the_connection_gauge_follows_opens_and_closes(server: DaphneProcess) -> None:
    before = await scrape(server)
    gauge = value(before, "wsmanager_connections", handler=CHAT)
    opened = value(before, "wsmanager_connections_opened_total", handler=CHAT)
    closed = value(before, "wsmanager_connections_closed_total", handler=CHAT, code="1000")
    peers = [await Peer.open(chat_url(server, "gauge")) for _ in range(3)]
    during = await scrape(server)
    assert value(during, "wsmanager_connections", handler=CHAT) == gauge + 3
    assert value(during, "wsmanager_connections_opened_total", handler=CHAT) == opened + 3
    await peers[0].close()
    after = await until_value(server, gauge + 2, "wsmanager_connections", handler=CHAT)
    assert value(after, "wsmanager_connections_closed_total", handler=CHAT, code="1000") == closed + 1
    for peer in peers[1:]:
        await peer.close()
    await until_value(server, gauge, "wsmanager_connections", handler=CHAT)


async def test_a_close_code_the_client_chooses_never_becomes_a_series(server: DaphneProcess) -> None:
    """Issue 21 (6): 2,000 sockets closing with codes 3000 to 4999 added 1,816 series.
    Codes outside the documented set (RFC 6455's, wsmanager's CloseCode) count as ``other``."""
    before = await scrape(server)
    gauge = value(before, "wsmanager_connections", handler=CHAT)
    other = value(before, "wsmanager_connections_closed_total", handler=CHAT, code="other")
    codes = [3000, 3001, 3999, 4000, 4001, 4500, 4998, 4999]
    # A room each: a close racing a presence frame to a closing neighbour is issue 21 (4), not this.
    peers = [await Peer.open(chat_url(server, f"codes-{code}")) for code in codes]
    for peer, code in zip(peers, codes, strict=True):
        await peer.ws.close(code)
    after = await until_value(server, gauge, "wsmanager_connections", handler=CHAT)
    closed = "wsmanager_connections_closed_total"
    assert value(after, closed, handler=CHAT, code="other") == other + len(codes)
    labels = {dict(labels).get("code") for (name, labels) in after if name == closed}
    assert labels.isdisjoint(str(code) for code in codes), labels


async def test_messages_and_calls_are_counted_and_errors_are_outcome_error(server: DaphneProcess) -> None:
    peer = await Peer.open(chat_url(server, "counted"))
    before = await scrape(server)
    assert await peer.call("send", "one") == {"delivered": 1}
    assert await peer.call("send", "two") == {"delivered": 1}
    assert (await peer.request("send", 42))["error"]["code"] == -32602  # bad params
    assert (await peer.request("no.such.method"))["error"]["code"] == -32601
    assert (await peer.request("who"))["result"]
    after = await scrape(server)
    await peer.close()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("wsmanager_messages_received_total", handler=CHAT) == 5
    # 5 answers and 2 "message" notifications (the sender is the room's only member).
    assert delta("wsmanager_messages_sent_total", handler=CHAT) == 7
    rpc = "wsmanager_rpc_duration_seconds_count"
    assert delta(rpc, handler=CHAT, method="send", outcome="ok") == 2
    assert delta(rpc, handler=CHAT, method="send", outcome="error") == 1
    assert delta(rpc, handler=CHAT, method="unknown", outcome="error") == 1
    assert delta(rpc, handler=CHAT, method="who", outcome="ok") == 1
    assert not [
        key for key in after if key[0].startswith("wsmanager_rpc") and ("method", "no.such.method") in key[1]
    ]


async def test_invokes_are_timed_by_outcome(server: DaphneProcess) -> None:
    """/invoke answered by the client: ok; unanswered until its timeout: error."""
    peer = await Peer.open(chat_url(server, "invoked"))
    before = await scrape(server)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    path = f"/api/sockets/{peer.id}/invoke"
    first = {"method": "ask", "params": [1]}
    asking = asyncio.ensure_future(http("POST", server, path, json=first, headers=auth))
    request = await peer.recv_json()
    assert request["method"] == "ask"
    await peer.send_raw(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "yes"}))
    assert (await asking).json() == {"result": "yes"}
    body = {"method": "ask", "params": [2], "timeout": 0.2}
    unanswered = await http("POST", server, path, json=body, headers=auth)
    assert unanswered.status_code == 504
    after = await scrape(server)
    await peer.close()
    name = "wsmanager_invoke_duration_seconds_count"
    for outcome in ("ok", "error"):
        assert (
            value(after, name, handler=CHAT, outcome=outcome)
            == value(before, name, handler=CHAT, outcome=outcome) + 1
        )


async def test_drops_are_counted_under_their_reason(server: DaphneProcess) -> None:
    """A burst over the rate limit: each call answered -32002 is one ``rate_limited`` drop
    (exactly 40: no token comes back on the server's stopped clock)."""
    before = await scrape(server)
    assert {key[1] for key in before if key[0] == "wsmanager_dropped_total"} == {
        frozenset({("reason", reason)}) for reason in DROP_REASONS
    }
    peer = await Peer.open(chat_url(server, "dropped"))
    burst = 240  # over the burst of 200, under 50 refusals in a row (which close the socket)
    for call_id in range(1, burst + 1):
        await peer.send_raw(json.dumps({"jsonrpc": "2.0", "method": "rpc.ping", "id": call_id}))
    answers = [await peer.recv_json() for _ in range(burst)]
    await peer.close()
    refused = sum(1 for answer in answers if answer.get("error", {}).get("code") == -32002)
    assert refused == burst - 200
    after = await scrape(server)
    was = value(before, "wsmanager_dropped_total", reason="rate_limited")
    assert value(after, "wsmanager_dropped_total", reason="rate_limited") == was + refused


def per_worker_drops(directory: Path, reason: str) -> dict[str, float]:
    """The drops of ``reason`` each worker wrote to its file of the multi-process directory (by pid)."""
    found: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        for key, count, _timestamp, _offset in MmapedDict.read_all_values_from_file(str(path)):
            name, sample, labels, *_ = json.loads(key)
            if (name, sample, labels) == ("wsmanager_dropped", "wsmanager_dropped_total", {"reason": reason}):
                pid = path.stem.split("_", 1)[1]
                found[pid] = found.get(pid, 0.0) + count
    return {pid: count for pid, count in found.items() if count}


async def test_gunicorn_multiprocess_mode_serves_every_workers_drops(tmp_path: Path) -> None:
    """gunicorn with two uvicorn workers and PROMETHEUS_MULTIPROC_DIR: oversize frames refused
    by both workers (1009) add up in /metrics, whichever worker answers the scrape; each
    worker's share reaches the directory with its heartbeat."""
    proc = GunicornUvicornProcess(
        app="tests.e2e.servers_app:application",
        env={
            "DEMO_DB": ":memory:",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "metrics-e2e-not-the-placeholder",
            "DEMO_API_TOKEN": TOKEN,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        },
    )
    with proc:
        refused = 0
        async with asyncio.timeout(120):
            # Until both workers have refused a frame and published it (sockets go to either).
            while refused < 4 or len(per_worker_drops(tmp_path, "refused_too_big")) < 2:
                peer = await Peer.open(f"{proc.ws_url}/ws/small/")
                await peer.send_raw("x" * (SMALL_FRAME + 1))
                with contextlib.suppress(websockets.ConnectionClosed):
                    while True:
                        await peer.ws.recv()
                refused += 1
                await asyncio.sleep(0.5)
            await until_value(proc, refused, "wsmanager_dropped_total", reason="refused_too_big", wait=30)
    assert sum(per_worker_drops(tmp_path, "refused_too_big").values()) == refused
