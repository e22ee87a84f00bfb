"""One user's sockets on two server processes (each server in turn): per-user notify, invoke and queries reach
all of them (tests/e2e/users_app.py; in-process cases are in tests/test_presence.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests import redis_support
from tests.e2e.client import Peer, cluster_env, running
from tests.servers import ServerProcess, server_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

redis_url = redis_support.redis_url


@pytest.fixture(scope="module")
def cluster(redis_url: str, server_kind: str) -> Iterator[list[ServerProcess]]:
    """Two processes of each server in turn serving the users app on one Redis."""
    env = cluster_env(redis_url)
    app = "tests.e2e.users_app:application"
    with running([server_process(server_kind, app=app, env=env) for _ in range(2)]) as servers:
        yield servers


def url(server: ServerProcess, user: int | None = None) -> str:
    return f"{server.ws_url}/ws/users/" + ("" if user is None else f"?user={user}")


async def answer_call(peer: Peer, method: str, result: object) -> None:
    """Read the server's call of ``method`` and answer it with ``result``."""
    request = await peer.recv_json()
    assert request["method"] == method, request
    await peer.send_raw(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}))


async def test_a_users_tabs_in_two_processes_are_reached_together(cluster: list[ServerProcess]) -> None:
    """notify_user, invoke_user, user_sockets and is_online see both processes' tabs of user 7."""
    one, two = cluster
    tab1, tab2 = await Peer.open(url(one, 7)), await Peer.open(url(two, 7))
    caller = await Peer.open(url(one, 8))
    stranger = await Peer.open(url(two))

    assert await caller.call("user_sockets", 7) == sorted([tab1.id, tab2.id])
    assert await stranger.call("is_online", 7) is True
    assert await caller.call("notify_user", 7, "hello") == 2
    for tab in (tab1, tab2):
        assert (await tab.notification("note"))["params"] == ["hello"]
    await stranger.nothing()
    await caller.nothing()

    asking = asyncio.ensure_future(caller.call("invoke_user", 7, "whoami"))
    await asyncio.gather(answer_call(tab1, "whoami", "first tab"), answer_call(tab2, "whoami", "second tab"))
    assert await asking == {tab1.id: "first tab", tab2.id: "second tab"}

    await tab2.close()
    await tab1.close()
    for _ in range(100):  # each process forgets its tab once its disconnect is handled
        if await stranger.call("user_sockets", 7) == []:
            break
        await asyncio.sleep(0.1)
    assert await stranger.call("user_sockets", 7) == []
    assert await stranger.call("is_online", 7) is False
    assert await caller.call("notify_user", 7, "anyone?") == 0
    await caller.close()
    await stranger.close()
