"""``manage.py wsmanager`` against a live cluster: a separate process sees and reaches sockets."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests import redis_support
from tests.e2e.client import Peer
from tests.servers import ROOT, DaphneProcess

# Each test runs manage.py in processes of their own (Django starts each time).
pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(180)]

redis_url = redis_support.redis_url


@pytest.fixture(scope="module")
def live(redis_url: str) -> Iterator[DaphneProcess]:
    env = {
        "REDIS_URL": redis_url,
        "WSMANAGER_REDIS_PREFIX": f"m{secrets.token_hex(4)}",
        "WSMANAGER_HEARTBEAT": "0.5",  # counters are published on each beat
        "DEMO_DB": ":memory:",
    }
    with DaphneProcess(env=env) as server:
        yield server


async def manage(
    server: DaphneProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py wsmanager ARGS`` in its own process, as an operator would."""
    # The demo routes two handlers (chat, live): the operator names the one meant.
    cmd = [sys.executable, "manage.py", "wsmanager", "--handler", "chat", *args]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, cwd=ROOT, env=env or server.env, capture_output=True, text=True, timeout=60
        )

    return await asyncio.to_thread(run)


async def test_list_and_count_show_every_socket_with_its_details(live: DaphneProcess) -> None:
    """list --json gives id, groups, node and connected_at; count matches."""
    a = await Peer.open(f"{live.ws_url}/ws/chat/ops1/?name=ann")
    b = await Peer.open(f"{live.ws_url}/ws/chat/ops2/")
    listed = await manage(live, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert set(rows) >= {a.id, b.id}
    assert rows[a.id]["groups"] == ["room.ops1"]
    assert rows[a.id]["meta"] == {"name": "ann"}
    assert rows[a.id]["node"].startswith("wsmanager.node")
    table = await manage(live, "list", "--group", "room.ops2")
    assert b.id in table.stdout and a.id not in table.stdout
    count = await manage(live, "count")
    assert int(count.stdout) == len(rows)
    assert count.stderr == ""
    await a.close()
    await b.close()


async def test_send_notify_and_disconnect_reach_the_socket(live: DaphneProcess) -> None:
    """send --to, notify --group and disconnect act on sockets of the server process."""
    a = await Peer.open(f"{live.ws_url}/ws/chat/ops3/")
    sent = await manage(live, "send", "--to", a.id, "--text", "raw text")
    assert sent.returncode == 0, sent.stderr
    assert await a.ws.recv() == "raw text"
    notified = await manage(live, "notify", "--group", "room.ops3", "message", "--params", '{"text": "hi"}')
    assert "notified 1 socket(s)" in notified.stdout
    assert (await a.notification("message"))["params"] == {"text": "hi"}
    closed = await manage(live, "disconnect", a.id, "--code", "4000", "--reason", "bye")
    assert closed.returncode == 0, closed.stderr
    await asyncio.wait_for(a.ws.wait_closed(), 10)
    assert a.ws.close_code == 4000


async def test_every_target_and_payload_form_reaches_the_right_sockets(live: DaphneProcess) -> None:
    """send --group/--all/--json and notify --to/--all reach exactly their targets; the table
    shows each socket's user and connection time."""
    a = await Peer.open(f"{live.ws_url}/ws/chat/ops5/")
    b = await Peer.open(f"{live.ws_url}/ws/chat/ops6/")
    group = await manage(live, "send", "--group", "room.ops5", "--json", '{"n": 1}')
    assert "sent to 1 socket(s)" in group.stdout, group.stderr
    assert json.loads(await a.ws.recv()) == {"n": 1}
    await b.nothing()
    everyone = await manage(live, "send", "--all", "--text", "to all")
    assert everyone.returncode == 0, everyone.stderr
    for peer in (a, b):
        assert await peer.ws.recv() == "to all"
    one = await manage(live, "notify", "--to", b.id, "message", "--params", '["just b"]')
    assert "notified 1 socket(s)" in one.stdout
    assert (await b.notification("message"))["params"] == ["just b"]
    await a.nothing()
    all_of_them = await manage(live, "notify", "--all", "message", "--params", '{"text": "all"}')
    assert all_of_them.returncode == 0, all_of_them.stderr
    for peer in (a, b):
        assert (await peer.notification("message"))["params"] == {"text": "all"}
    table = (await manage(live, "list", "--group", "room.ops5")).stdout.splitlines()
    assert table[0].split()[:4] == ["id", "user", "connected", "since"]
    (row,) = [line for line in table[1:] if line.startswith(a.id)]
    assert re.match(rf"{re.escape(a.id)}\s+-\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+wsmanager\.node", row), row
    await a.close()
    await b.close()


async def test_stats_show_the_counters_each_live_process_published(live: DaphneProcess) -> None:
    """stats --json: the server's node with its open sockets and a ``delivered`` that grows."""
    peer = await Peer.open(f"{live.ws_url}/ws/chat/ops7/")
    sent = await manage(live, "send", "--to", peer.id, "--text", "counted")
    assert sent.returncode == 0, sent.stderr
    assert await peer.ws.recv() == "counted"
    for _ in range(30):  # published on the server's next heartbeat
        shown = await manage(live, "stats", "--json")
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        (node, stats), *others = report["nodes"].items() or [("", {})]
        if stats.get("delivered", 0) >= 1 and stats.get("sockets", 0) >= 1:
            break
        await asyncio.sleep(0.2)
    assert node.startswith("wsmanager.node") and others == []
    assert stats["delivered"] >= 1 and stats["sockets"] >= 1
    assert report["total"]["delivered"] == stats["delivered"]
    table = await manage(live, "stats")
    assert re.search(r"^total\s+sockets=\d+\s.*delivered=\d+", table.stdout, re.M), table.stdout
    await peer.close()


async def test_errors_are_reported_without_a_traceback(live: DaphneProcess) -> None:
    """An unknown id or bad JSON exits non-zero with a one-line error."""
    missing = await manage(live, "send", "--to", "nope", "--text", "x")
    assert missing.returncode != 0
    assert "no open socket with id 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = await manage(live, "notify", "--all", "m", "--params", "{not json")
    assert bad.returncode != 0 and "not valid JSON" in bad.stderr


async def test_in_memory_registry_is_reported_as_seeing_nothing(live: DaphneProcess) -> None:
    """Without a shared registry the command warns that it sees only its own (empty) process."""
    peer = await Peer.open(f"{live.ws_url}/ws/chat/ops4/")
    alone = {key: value for key, value in live.env.items() if key != "REDIS_URL"}
    count = await manage(live, "count", env=alone)
    assert count.returncode == 0, count.stderr
    assert count.stdout.strip() == "0"
    assert "registry is in-memory" in count.stderr
    await peer.close()
