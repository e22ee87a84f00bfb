"""Who may use the demo's HTTP API (docs/demo.md#access-control), against real daphne
processes over real HTTP: CSRF for session cookies, bearer tokens compared as
bytes, no internal addresses in error bodies, ``/invoke`` params of any name,
the cross-origin guard with DEBUG on, and start-up refused with the demo's
placeholder ``SECRET_KEY`` and DEBUG off."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import redis_support
from tests.e2e.client import Peer, chat_url, cluster_env, http, running
from tests.servers import ROOT, DaphneProcess

pytestmark = pytest.mark.e2e

redis_url = redis_support.redis_url

TOKEN = "s3cret"
SECRET = "e2e-secret-key-not-the-placeholder-0123456789abcdef"
STAFF_SESSION = """
import django
django.setup()
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
boss = User.objects.create_user("boss", password="pw", is_staff=True)
boss.user_permissions.add(Permission.objects.get(codename="manage_connections"))
clerk = User.objects.create_user("clerk", password="pw", is_staff=True)
for user in (boss, clerk):
    client = Client()
    client.force_login(user)
    print(client.cookies["sessionid"].value)
"""


@dataclass
class Site:
    """A DEBUG-off demo on a migrated SQLite file, and two staff users' session cookies:
    ``session`` of one with the admin's permission ``wsmanager.manage_connections``,
    ``clerk_session`` of one without it."""

    server: DaphneProcess
    session: str
    clerk_session: str

    @property
    def origin(self) -> str:
        return self.server.http_url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    db = tmp_path_factory.mktemp("demo-db") / "db.sqlite3"
    env = {
        "DJANGO_SETTINGS_MODULE": "demo_chat.settings",  # tests.settings would put the DB in memory
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": SECRET,
        "DEMO_API_TOKEN": TOKEN,
        "DEMO_DB": str(db),
    }
    made = subprocess.run(
        [sys.executable, "-c", STAFF_SESSION],
        cwd=ROOT,
        env=DaphneProcess(env=env).env,
        capture_output=True,
        text=True,
        check=True,
    )
    with DaphneProcess(env=env) as server:
        yield Site(server, *made.stdout.strip().splitlines()[-2:])


async def csrf_token(site: Site, session: str | None = None) -> str:
    """The CSRF cookie the chat page sets (what the page's own scripts would send back)."""
    cookie = f"sessionid={session or site.session}"
    page = await http("GET", site.server, "/", headers={"Cookie": cookie})
    assert page.status_code == 200
    return str(page.cookies["csrftoken"])


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str)
    return body


# -- DEBUG off: session cookies need the CSRF token, tokens do not ------------------------


async def test_a_cross_site_post_riding_a_staff_session_is_refused(site: Site) -> None:
    """A text/plain form post from another site carrying the staff cookie: JSON 403, nothing sent."""
    peer = await Peer.open(chat_url(site.server, "csrf"))
    forged = await http(
        "POST",
        site.server,
        f"/api/sockets/{peer.id}/messages",
        content=json.dumps({"text": "forged"}),
        headers={
            "Content-Type": "text/plain",
            "Cookie": f"sessionid={site.session}",
            "Origin": "http://evil.example",
        },
    )
    assert "CSRF" in assert_json_error(forged, 403)["error"]
    no_token = await http(
        "POST",
        site.server,
        "/api/rooms/csrf/messages",
        json={"text": "forged"},
        headers={"Cookie": f"sessionid={site.session}"},
    )
    assert "CSRF" in assert_json_error(no_token, 403)["error"]
    await peer.nothing()
    await peer.close()


async def test_a_staff_session_with_the_pages_csrf_token_is_served(site: Site) -> None:
    """The same session with the CSRF cookie and header from its own origin: 202, delivered."""
    peer = await Peer.open(chat_url(site.server, "csrf-ok"))
    token = await csrf_token(site)
    sent = await http(
        "POST",
        site.server,
        f"/api/sockets/{peer.id}/messages",
        json={"text": "from staff"},
        headers={
            "Cookie": f"sessionid={site.session}; csrftoken={token}",
            "X-CSRFToken": token,
            "Origin": site.origin,
        },
    )
    assert sent.status_code == 202, sent.text
    assert (await peer.notification("message"))["params"]["text"] == "from staff"
    await peer.close()


async def test_a_staff_session_without_the_admins_permission_is_refused_as_the_admin_does(
    site: Site,
) -> None:
    """Issue 21 (7): staff without ``wsmanager.manage_connections`` got 403 on the admin page but
    202 on the API. Now the API follows the admin: 403 on every endpoint, nothing delivered."""
    peer = await Peer.open(chat_url(site.server, "clerk"))
    token = await csrf_token(site, site.clerk_session)
    headers = {
        "Cookie": f"sessionid={site.clerk_session}; csrftoken={token}",
        "X-CSRFToken": token,
        "Origin": site.origin,
    }
    admin = await http("GET", site.server, "/admin/wsmanager/liveconnection/", headers=headers)
    assert admin.status_code == 403
    for method, path, body in [
        ("POST", "/api/rooms/clerk/messages", {"text": "from a clerk"}),
        ("POST", f"/api/sockets/{peer.id}/messages", {"text": "from a clerk"}),
        ("POST", f"/api/sockets/{peer.id}/invoke", {"method": "ping", "params": []}),
        ("GET", "/api/rooms/clerk/sockets", None),
        ("GET", "/api/stats", None),
    ]:
        response = await http(method, site.server, path, json=body, headers=headers)
        assert "manage_connections" in assert_json_error(response, 403)["error"], (method, path)
    await peer.nothing()
    await peer.close()


async def test_the_bearer_token_needs_no_csrf_token(site: Site) -> None:
    """Token-authenticated requests stay CSRF-exempt (a browser cannot add the header cross-site)."""
    peer = await Peer.open(chat_url(site.server, "token"))
    sent = await http(
        "POST",
        site.server,
        f"/api/sockets/{peer.id}/messages",
        content=json.dumps({"text": "scripted"}),
        headers={"Content-Type": "text/plain", "Authorization": f"Bearer {TOKEN}"},
    )
    assert sent.status_code == 202, sent.text
    assert (await peer.notification("message"))["params"]["text"] == "scripted"
    await peer.close()


@pytest.mark.parametrize(
    "value",
    [
        "Bearer é".encode(),
        "Bearer s3cr\u00e9t".encode("latin-1"),
        b"Bearer \xff\xfe",
        b"Bearer a b",
        b"Bearer",
    ],
)
async def test_a_malformed_bearer_token_answers_json_400(site: Site, value: bytes) -> None:
    """Non-ASCII, spaces or nothing after ``Bearer``: a JSON 400, never an HTML 500."""
    response = await http("GET", site.server, "/api/rooms/lobby/sockets", headers={"Authorization": value})
    assert "Authorization" in assert_json_error(response, 400)["error"]
    still = await http("GET", site.server, "/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    assert still.status_code == 200


# -- DEBUG on (the default): the open API refuses other sites' pages ------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_with_debug_on_other_sites_pages_are_refused(
    demo_server: DaphneProcess, headers: dict[str, str]
) -> None:
    """A post from another site's page (Origin or Sec-Fetch-Site says so): JSON 403, nothing sent."""
    # A room of its own per case: the server is shared, and the previous case's member
    # leaving is announced to its room up to one presence interval after its close.
    room = f"debug-xsite-{secrets.token_hex(4)}"
    peer = await Peer.open(chat_url(demo_server, room))
    for method, path, body in (
        ("POST", f"/api/sockets/{peer.id}/messages", {"text": "forged"}),
        ("POST", f"/api/sockets/{peer.id}/invoke", {"method": "steal"}),
        ("GET", f"/api/rooms/{room}/sockets", None),
    ):
        refused = await http(method, demo_server, path, json=body, headers=headers)
        assert "cross-origin" in assert_json_error(refused, 403)["error"]
    await peer.nothing()
    await peer.close()


@pytest.mark.parametrize("same", ["origin", "sec-fetch-site", "none", "script"])
async def test_with_debug_on_the_sites_own_pages_and_scripts_are_served(
    demo_server: DaphneProcess, same: str
) -> None:
    """The demo's own origin, ``Sec-Fetch-Site: same-origin`` / ``none``, or no header at all: 202."""
    headers = {
        "origin": {"Origin": demo_server.http_url},
        "sec-fetch-site": {"Sec-Fetch-Site": "same-origin", "Origin": demo_server.http_url},
        "none": {"Sec-Fetch-Site": "none"},
        "script": {},
    }[same]
    peer = await Peer.open(chat_url(demo_server, f"debug-same-{secrets.token_hex(4)}"))
    sent = await http(
        "POST", demo_server, f"/api/sockets/{peer.id}/messages", json={"text": same}, headers=headers
    )
    assert sent.status_code == 202, sent.text
    assert (await peer.notification("message"))["params"]["text"] == same
    await peer.close()


# -- /invoke: params of any name ------------------------------------------------------------


@pytest.mark.parametrize("params", [{"timeout": 1, "self": 2}, {"socket_id": "x", "method": "y"}])
async def test_invoke_passes_named_params_of_any_name(
    demo_server: DaphneProcess, params: dict[str, Any]
) -> None:
    """Named params called like the view's or the manager's own arguments reach the client as sent."""
    # A room of its own: a notice about the previous case's peer could come first otherwise.
    peer = await Peer.open(chat_url(demo_server, f"invoke-names-{secrets.token_hex(4)}"))
    body = {"method": "echo", "params": params, "timeout": 5}
    call = asyncio.ensure_future(http("POST", demo_server, f"/api/sockets/{peer.id}/invoke", json=body))
    request = await peer.recv_json()
    assert (request["method"], request["params"]) == ("echo", params)
    await peer.send_raw(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": request["params"]}))
    response = await call
    assert (response.status_code, response.json()) == (200, {"result": params})
    await peer.close()


@pytest.mark.redis
async def test_invoke_passes_named_params_of_any_name_to_another_process(redis_url: str) -> None:
    """The same through the channel layer: the socket lives in the other daphne process."""
    env = cluster_env(redis_url)  # one key prefix for both
    with running([DaphneProcess(env=env) for _ in range(2)]) as (front, back):
        peer = await Peer.open(chat_url(back, "invoke-remote"))
        params = {"timeout": 1, "self": 2, "method": 3}
        body = {"method": "echo", "params": params, "timeout": 5}
        call = asyncio.ensure_future(http("POST", front, f"/api/sockets/{peer.id}/invoke", json=body))
        request = await peer.recv_json()
        assert (request["method"], request["params"]) == ("echo", params)
        await peer.send_raw(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "done"}))
        response = await call
        assert (response.status_code, response.json()) == (200, {"result": "done"})
        await peer.close()


# -- errors name no internal address -------------------------------------------------------


async def test_an_unreachable_redis_answers_503_without_its_address(tmp_path: Path) -> None:
    """The registry's Redis cannot be reached: 503 JSON that says so without the URL or address."""
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "DEMO_DB": ":memory:", "WSMANAGER_LOG": "CRITICAL"}
    with DaphneProcess(env=env) as server:
        for method, path, body in (
            ("GET", "/api/rooms/lobby/sockets", None),
            ("POST", "/api/rooms/lobby/messages", {"text": "hi"}),
            ("POST", "/api/sockets/nope/invoke", {"method": "m"}),
        ):
            response = await http(method, server, path, json=body)
            error = assert_json_error(response, 503)["error"]
            assert "unavailable" in error
            assert "127.0.0.1" not in response.text and "redis://" not in response.text


# -- start-up ------------------------------------------------------------------------------


def test_with_debug_off_the_placeholder_secret_key_refuses_to_start() -> None:
    """DEBUG off without DJANGO_SECRET_KEY: daphne exits, and ``manage.py check`` names the error."""
    # The demo's own settings (the suite's tests.settings has a key of its own).
    env = {"DJANGO_DEBUG": "0", "DEMO_DB": ":memory:", "DJANGO_SETTINGS_MODULE": "demo_chat.settings"}
    server = DaphneProcess(env=env)
    with pytest.raises(RuntimeError) as failed:
        server.start()
    assert "demo_chat.E001" in str(failed.value)
    check = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=server.env, capture_output=True, text=True
    )
    assert check.returncode != 0
    assert "demo_chat.E001" in check.stderr
    ok = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**server.env, "DJANGO_SECRET_KEY": SECRET},
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
