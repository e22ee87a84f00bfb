"""Topics end to end (docs/topics.md, docs/protocol.md section 13): the demo's ``/ws/live/``
and task API on two real server processes of each server kind, sharing Redis and one SQLite
file. Authorization per pattern, refusals, unsubscribe, a reload that gets exactly what it
missed, ``recovered: false`` after trimming and after the history key is lost, a rollback
that publishes nothing, a bulk request published in order, and recovery after the
subscriber's process is SIGKILLed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests import redis_support
from tests.e2e.client import Peer, cluster_env, http, http_client, running
from tests.once import built_once
from tests.servers import ROOT, ServerProcess, server_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

redis_url = redis_support.redis_url

#: The demo keeps this many publications per topic here (DEMO_TOPIC_HISTORY_SIZE).
HISTORY = 8
#: The most tasks the demo's list holds here (DEMO_MAX_TASKS): a bulk past it rolls back.
MAX_TASKS = 60

USERS = """
import django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
for name in ("ann", "bob"):
    user = User.objects.create_user(name, password="pw")
    client = Client()
    client.force_login(user)
    print(user.pk, client.cookies["sessionid"].value)
"""


@dataclass
class Site:
    servers: list[ServerProcess]
    env: dict[str, str]
    redis_url: str
    #: (user pk, session cookie) of ann and bob.
    users: list[tuple[int, str]]

    @property
    def prefix(self) -> str:
        return f"{self.env['WSMANAGER_REDIS_PREFIX']}:wsm"


def migrated_with_users(where: Path) -> None:
    """``where``/db.sqlite3: the demo's database migrated, with ann and bob logged in;
    ``where``/users: their (pk, session cookie) lines."""
    env = {"DEMO_DB": str(where / "db.sqlite3"), "DJANGO_SETTINGS_MODULE": "demo_chat.settings"}
    made = subprocess.run(
        [sys.executable, "-c", USERS],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    (where / "users").write_text("\n".join(made.stdout.strip().splitlines()[-2:]))


@pytest.fixture(scope="module")
def site(redis_url: str, server_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two processes of ``server_kind`` on Redis (a fresh prefix) and one SQLite file of their
    own, a copy of a database migrated once per run (:func:`tests.once.built_once`)."""
    template = built_once(tmp_path_factory, "topics-db", migrated_with_users)
    db = tmp_path_factory.mktemp("topics-db") / "db.sqlite3"
    shutil.copyfile(template / "db.sqlite3", db)
    env = cluster_env(
        redis_url,
        DEMO_DB=str(db),
        DEMO_TOPIC_HISTORY_SIZE=str(HISTORY),
        DEMO_MAX_TASKS=str(MAX_TASKS),
        DEMO_MAX_PER_ADDRESS="0",
        DJANGO_SETTINGS_MODULE="demo_chat.settings",
    )
    users = [
        (int(pk), cookie)
        for pk, cookie in (line.split() for line in (template / "users").read_text().splitlines())
    ]
    with running([server_process(server_kind, env=env) for _ in range(2)]) as servers:
        yield Site(servers, env, redis_url, users)


def live(server: ServerProcess) -> str:
    return f"{server.ws_url}/ws/live/"


async def open_live(server: ServerProcess, session: str | None = None) -> Peer:
    headers = {"Cookie": f"sessionid={session}"} if session else None
    return await Peer.open(live(server), additional_headers=headers)


async def subscribe(peer: Peer, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the publications before the answer, the answer)."""
    answer = await peer.request("rpc.subscribe", **params)
    before = [m for m in peer.inbox if m.get("method") == "rpc.publication"]
    peer.inbox.clear()
    return [m["params"] for m in before], answer


async def publication(peer: Peer) -> dict[str, Any]:
    params: dict[str, Any] = (await peer.notification("rpc.publication"))["params"]
    return params


async def create(server: ServerProcess, title: str) -> dict[str, Any]:
    response = await http("POST", server, "/api/tasks", json={"title": title})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def position(server: ServerProcess) -> dict[str, Any]:
    response = await http("GET", server, "/api/tasks")
    assert response.status_code == 200, response.text
    topic: dict[str, Any] = response.json()["topic"]
    return topic


async def session_client(server: ServerProcess, session: str) -> httpx.AsyncClient:
    """An HTTP client logged in with ``session``, carrying the CSRF token the page sets."""
    client = http_client(server, headers={"Cookie": f"sessionid={session}"})
    page = await client.get("/")
    token = page.cookies["csrftoken"]
    client.headers["Cookie"] = f"sessionid={session}; csrftoken={token}"
    client.headers["X-CSRFToken"] = token
    return client


# -- authorization and refusals ---------------------------------------------------------------
async def test_each_pattern_authorizes_its_own_way(site: Site) -> None:
    (ann, ann_session), (bob, _) = site.users
    anonymous = await open_live(site.servers[1])
    user = await open_live(site.servers[0], ann_session)
    try:
        assert (await anonymous.call("rpc.subscribe", topic="tasks"))["topic"] == "tasks"
        assert (await anonymous.request("rpc.subscribe", topic=f"user.{ann}"))["error"]["code"] == -32011
        mine = await user.call("rpc.subscribe", topic=f"user.{ann}")
        assert mine["topic"] == f"user.{ann}" and mine["recovered"] is False
        refused = await user.request("rpc.subscribe", topic=f"user.{bob}")
        assert refused["error"] == {
            "code": -32011,
            "message": "Not authorized",
            "data": {"topic": f"user.{bob}"},
        }
        assert (await user.request("rpc.subscribe", topic="user.me"))["error"]["code"] == -32010
        assert (await user.request("rpc.subscribe", topic="t" * 201))["error"]["code"] == -32602
        bad_since = await user.request("rpc.subscribe", topic="tasks", since={"offset": "1", "epoch": "e"})
        assert bad_since["error"]["code"] == -32602
    finally:
        await anonymous.close()
        await user.close()


async def test_a_users_topic_hears_what_its_session_did_and_unsubscribe_stops_tasks(site: Site) -> None:
    """ann's page, subscribed to ``tasks`` and ``user.<ann>``, unsubscribes from ``tasks``:
    her next task's ``notice`` (published after its ``created``) is the first thing it hears."""
    ann, session = site.users[0]
    page = await open_live(site.servers[1], session)
    client = await session_client(site.servers[0], session)
    try:
        await page.call("rpc.subscribe", topic="tasks")
        await page.call("rpc.subscribe", topic=f"user.{ann}")
        made = await client.post("/api/tasks", json={"title": "hers"})
        assert made.status_code == 201, made.text
        created, notice = await publication(page), await publication(page)
        assert (created["topic"], created["event"], created["data"]) == ("tasks", "created", made.json())
        assert (notice["topic"], notice["event"]) == (f"user.{ann}", "notice")
        assert await page.call("rpc.unsubscribe", topic="tasks") == {"topic": "tasks"}
        again = await client.post("/api/tasks", json={"title": "hers again"})
        assert again.status_code == 201
        assert (await publication(page))["topic"] == f"user.{ann}"  # no "created" before it
    finally:
        await client.aclose()
        await page.close()


# -- publications across processes, in order --------------------------------------------------------
async def test_changes_on_one_process_reach_subscribers_of_the_other_in_order(site: Site) -> None:
    a, b = site.servers
    peer = await open_live(b)
    try:
        start = (await peer.call("rpc.subscribe", topic="tasks"))["offset"]
        task = await create(a, "milk")
        patched = await http("PATCH", a, f"/api/tasks/{task['id']}", json={"done": True})
        assert patched.status_code == 200 and patched.json()["done"] is True
        assert (await http("DELETE", a, f"/api/tasks/{task['id']}")).status_code == 204
        seen = [await publication(peer) for _ in range(3)]
        assert [(p["offset"], p["event"]) for p in seen] == [
            (start + 1, "created"),
            (start + 2, "updated"),
            (start + 3, "deleted"),
        ]
        assert [p["data"] for p in seen] == [task, {**task, "done": True}, {**task, "done": True}]
        assert (await http("PATCH", a, f"/api/tasks/{task['id']}", json={"done": False})).status_code == 404
    finally:
        await peer.close()


async def test_bulk_is_one_transaction_published_in_order(site: Site) -> None:
    a, b = site.servers
    peer = await open_live(b)
    try:
        start = (await peer.call("rpc.subscribe", topic="tasks"))["offset"]
        response = await http("POST", a, "/api/tasks/bulk", json={"titles": [f"b{i}" for i in range(5)]})
        assert response.status_code == 201, response.text
        tasks = response.json()["tasks"]
        seen = [await publication(peer) for _ in range(5)]
        assert [p["offset"] for p in seen] == list(range(start + 1, start + 6))
        assert [p["data"] for p in seen] == tasks
        assert [t["title"] for t in tasks] == [f"b{i}" for i in range(5)]
        assert [t["id"] for t in tasks] == sorted(t["id"] for t in tasks)
    finally:
        await peer.close()


async def test_a_rolled_back_bulk_publishes_nothing(site: Site) -> None:
    a, b = site.servers
    peer = await open_live(b)
    try:
        start = (await peer.call("rpc.subscribe", topic="tasks"))["offset"]
        before = (await http("GET", a, "/api/tasks")).json()["tasks"]
        too_many = {"titles": [f"x{i}" for i in range(MAX_TASKS + 1 - len(before))]}
        refused = await http("POST", a, "/api/tasks/bulk", json=too_many)
        assert refused.status_code == 409, refused.text
        assert (await http("GET", a, "/api/tasks")).json()["tasks"] == before
        after = await create(a, "after the rollback")
        first = await publication(peer)
        assert (first["offset"], first["data"]) == (start + 1, after)  # nothing came in between
    finally:
        await peer.close()


# -- positions: reload, trimming, a lost history, a killed process ----------------------------------
async def test_a_reload_gets_exactly_what_it_missed_in_order_once(site: Site) -> None:
    a, b = site.servers
    page = await open_live(b)
    first = await page.call("rpc.subscribe", topic="tasks")
    await page.close()  # the page reloads; meanwhile, three changes
    missed = [await create(a, f"while away {i}") for i in range(3)]
    reloaded = await open_live(a)
    try:
        since = {"offset": first["offset"], "epoch": first["epoch"]}
        replayed, answer = await subscribe(reloaded, topic="tasks", since=since)
        assert [p["data"] for p in replayed] == missed
        assert [p["offset"] for p in replayed] == [first["offset"] + i for i in (1, 2, 3)]
        result = answer["result"]
        assert result == {
            "topic": "tasks",
            "offset": first["offset"] + 3,
            "epoch": first["epoch"],
            "recovered": True,
        }
        live_one = await create(b, "live")
        assert (await publication(reloaded))["data"] == live_one  # the next frame: no duplicate before it
    finally:
        await reloaded.close()


async def test_a_gap_longer_than_the_history_is_not_recovered(site: Site) -> None:
    a, b = site.servers
    old = await position(a)
    for i in range(HISTORY + 1):
        await create(b, f"flood {i}")
    peer = await open_live(a)
    try:
        replayed, answer = await subscribe(peer, topic="tasks", since=old)
        result = answer["result"]
        assert replayed == [] and result["recovered"] is False
        assert result["offset"] == old["offset"] + HISTORY + 1 and result["epoch"] == old["epoch"]
        assert [t["title"] for t in result["state"]["tasks"]][-1] == f"flood {HISTORY}"  # refetch: the state
    finally:
        await peer.close()


async def test_a_lost_history_key_is_a_new_epoch(site: Site) -> None:
    a, b = site.servers
    await create(a, "before the loss")
    old = await position(a)
    async with aioredis.Redis.from_url(site.redis_url) as r:
        assert await r.delete(f"{site.prefix}:topic-history:{{live:tasks}}") == 1
    peer = await open_live(b)
    try:
        replayed, answer = await subscribe(peer, topic="tasks", since=old)
        result = answer["result"]
        assert replayed == [] and result["recovered"] is False
        assert result["epoch"] != old["epoch"] and result["offset"] == 0
        made = await create(a, "after the loss")
        seen = await publication(peer)
        assert (seen["offset"], seen["epoch"], seen["data"]) == (1, result["epoch"], made)
        assert await position(b) == {"offset": 1, "epoch": result["epoch"]}
    finally:
        await peer.close()


async def test_a_subscriber_whose_process_is_killed_recovers_on_another(site: Site) -> None:
    a = site.servers[0]
    with running([server_process(site.servers[0].kind, env=site.env)]) as (doomed,):
        peer = await open_live(doomed)
        start = await peer.call("rpc.subscribe", topic="tasks")
        heard = await create(a, "heard")
        seen = await publication(peer)
        assert seen["data"] == heard
        doomed.kill()  # SIGKILL: no clean-up at all
    missed = [await create(a, f"missed {i}") for i in range(2)]
    back = await open_live(a)
    try:
        since = {"offset": seen["offset"], "epoch": start["epoch"]}
        replayed, answer = await subscribe(back, topic="tasks", since=since)
        assert [p["data"] for p in replayed] == missed and answer["result"]["recovered"] is True
    finally:
        await back.close()
