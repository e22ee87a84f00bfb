"""The admin page of live connections against a real daphne: a superuser logged in with a
session sees a live socket, disconnects it and notifies another; the clients see both."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import websockets

from demo_chat.handlers import ChatHandler, room_group
from tests import redis_support
from tests.e2e.client import Peer, chat_url, cluster_env, http_client, running
from tests.servers import ROOT, DaphneProcess

pytestmark = pytest.mark.e2e

PAGE = "/admin/wsmanager/liveconnection/"
PASSWORD = "admin-e2e-password"
CHAT = ChatHandler.handler_name


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


redis_url = redis_support.redis_url


def database() -> Path:
    """A fresh demo database with a superuser (``createsuperuser``) and a staff user
    without the permission."""
    db = Path(tempfile.mkdtemp(prefix="wsm-admin-")) / "db.sqlite3"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo_chat.settings", "DEMO_DB": str(db)}
    manage(env, "migrate", "--noinput")
    superuser_env = {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    manage(superuser_env, "createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com")
    staff = (
        "from django.contrib.auth.models import User;"
        f"User.objects.create_user('staff', password='{PASSWORD}', is_staff=True)"
    )
    manage(env, "shell", "-c", staff)
    return db


@pytest.fixture(scope="module")
def server() -> Iterator[DaphneProcess]:
    db = database()
    proc = DaphneProcess(env={"DEMO_DB": str(db), "DJANGO_SETTINGS_MODULE": "demo_chat.settings"})
    proc.start()
    yield proc
    proc.stop()
    shutil.rmtree(db.parent)


async def logged_in(server: DaphneProcess, username: str) -> httpx.AsyncClient:
    client = http_client(server)
    form = await client.get("/admin/login/")
    data = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": csrf(form), "next": "/admin/"}
    response = await client.post("/admin/login/?next=/admin/", data=data)
    assert response.status_code == 302, response.text
    return client


@pytest.fixture
async def admin(server: DaphneProcess) -> AsyncIterator[httpx.AsyncClient]:
    client = await logged_in(server, "root")
    yield client
    await client.aclose()


def last_activity(page: str, socket_id: str) -> datetime | None:
    """The "last activity" cell of the socket's row: None while it shows "-"."""
    row = re.search(
        rf'<tr data-socket="{re.escape(socket_id)}">.*?<td class="wsm-active">([^<]*)</td>', page, re.S
    )
    assert row is not None, page
    cell = row.group(1).strip()
    return None if cell == "-" else datetime.strptime(cell, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def csrf(page: httpx.Response) -> str:
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None, page.text
    return token.group(1)


async def test_a_superuser_sees_a_live_socket_and_disconnects_it(
    server: DaphneProcess, admin: httpx.AsyncClient
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    peer = await Peer.open(chat_url(server, "adminroom"))
    other = await Peer.open(chat_url(server, "elsewhere"))
    assert await peer.call("rpc.ping") == "pong"
    page = await admin.get(PAGE, params={"q": peer.id})
    assert page.status_code == 200
    assert peer.id in page.text and other.id not in page.text
    assert room_group("adminroom") in page.text
    assert "precise to one heartbeat" in page.text
    # Published on the server's next heartbeat (every half HEARTBEAT_INTERVAL): wait for it.
    async with asyncio.timeout(30):
        while (active := last_activity(page.text, peer.id)) is None:
            await asyncio.sleep(0.2)
            page = await admin.get(PAGE, params={"q": peer.id})
    assert before <= active <= datetime.now(UTC)

    row = {"csrfmiddlewaretoken": csrf(page), "row_disconnect": f"{CHAT} {peer.id}"}
    response = await admin.post(PAGE, params={"q": peer.id}, data=row)
    assert response.status_code == 302
    with pytest.raises(websockets.ConnectionClosedOK) as closed:
        while True:
            await peer.recv_json()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "disconnected by an administrator")
    after = await admin.get(response.headers["location"])
    assert "Disconnected 1 connection(s)." in after.text
    assert peer.id not in after.text.split('id="result_list"')[1]
    await other.close()


async def test_filters_and_a_bulk_notification(server: DaphneProcess, admin: httpx.AsyncClient) -> None:
    """Filter by group: only that room's sockets; the ticked ones get the notification."""
    a = await Peer.open(chat_url(server, "bulkroom"))
    b = await Peer.open(chat_url(server, "bulkroom"))
    outside = await Peer.open(chat_url(server, "otherroom"))
    page = await admin.get(PAGE, params={"handler": CHAT})
    rows = re.findall(r'<tr data-socket="([^"]+)"', page.text)
    assert {a.id, b.id, outside.id} <= set(rows)
    group = room_group("bulkroom")
    filtered = await admin.get(PAGE, params={"group": group})
    assert set(re.findall(r'<tr data-socket="([^"]+)"', filtered.text)) == {a.id, b.id}

    data = {
        "csrfmiddlewaretoken": csrf(filtered),
        "action": "notify",
        "method": "admin.message",
        "text": "maintenance at noon",
        "sockets": [f"{CHAT} {a.id}", f"{CHAT} {b.id}"],
    }
    response = await admin.post(PAGE, params={"group": group}, data=data)
    assert response.status_code == 302
    for peer in (a, b):
        note = await peer.notification("admin.message")
        assert note["params"] == {"text": "maintenance at noon"}
    await outside.nothing()
    for peer in (a, b, outside):
        await peer.close()


async def test_staff_without_the_permission_and_anonymous_users_do_not_see_it(server: DaphneProcess) -> None:
    anonymous = await http_client(server, timeout=5).get(PAGE)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous.headers["location"]
    staff = await logged_in(server, "staff")
    try:
        assert (await staff.get(PAGE)).status_code == 403
        assert "Live connections" not in (await staff.get("/admin/")).text
    finally:
        await staff.aclose()


@pytest.mark.redis
async def test_cluster_wide_a_socket_of_another_process_is_listed_and_disconnected(redis_url: str) -> None:
    """Two processes on one Redis: the admin of the first lists and closes a socket of the second."""
    db = database()
    env = cluster_env(redis_url, DEMO_DB=str(db), DJANGO_SETTINGS_MODULE="demo_chat.settings")
    try:
        with running([DaphneProcess(env=env), DaphneProcess(env=env)]) as (first, second):
            peer = await Peer.open(chat_url(second, "cluster"))
            client = await logged_in(first, "root")
            try:
                page = await client.get(PAGE, params={"q": peer.id})
                assert peer.id in page.text
                async with asyncio.timeout(30):  # the second process's heartbeat publishes it
                    while last_activity(page.text, peer.id) is None:
                        await asyncio.sleep(0.2)
                        page = await client.get(PAGE, params={"q": peer.id})
                row = {"csrfmiddlewaretoken": csrf(page), "row_disconnect": f"{CHAT} {peer.id}"}
                assert (await client.post(PAGE, data=row)).status_code == 302
            finally:
                await client.aclose()
            with pytest.raises(websockets.ConnectionClosedOK) as closed:
                while True:
                    await peer.recv_json()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    finally:
        shutil.rmtree(db.parent)
