"""``wsmanager.admin``: the live connections page on the in-memory registry (Django's test client)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.handlers import CalcHandler, EchoHandler
from wsmanager import admin as live_admin
from wsmanager.exceptions import RegistryUnavailable
from wsmanager.registry import ConnectionInfo, get_registry

pytestmark = pytest.mark.django_db

PAGE = "/admin/wsmanager/liveconnection/"


def add(handler: str, sid: str, user: str | None = None, groups: frozenset[str] = frozenset()) -> None:
    info = ConnectionInfo(sid, handler, "node-a", user, groups, time.time())
    async_to_sync(get_registry().add)(info)


def rows(response: Any) -> set[str]:
    return {row["info"].id for row in response.context["rows"]}


@pytest.fixture
def staff() -> Client:
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_connections"))
    client = Client()
    client.force_login(user)
    return client


def test_filters_by_handler_group_user_and_id(staff: Client) -> None:
    calc, echo = CalcHandler.handler_name, EchoHandler.handler_name
    add(calc, "aaa-one", user="7", groups=frozenset({"room.a"}))
    add(calc, "bbb-two", user="8", groups=frozenset({"room.a", "room.b"}))
    add(echo, "ccc-three", user="7")
    assert rows(staff.get(PAGE)) >= {"aaa-one", "bbb-two", "ccc-three"}
    assert rows(staff.get(PAGE, {"handler": echo})) == {"ccc-three"}
    assert rows(staff.get(PAGE, {"group": "room.a"})) == {"aaa-one", "bbb-two"}
    assert rows(staff.get(PAGE, {"group": "room.a", "user": "8"})) == {"bbb-two"}
    assert rows(staff.get(PAGE, {"user": "7"})) == {"aaa-one", "ccc-three"}
    assert rows(staff.get(PAGE, {"q": "two"})) == {"bbb-two"}
    page = staff.get(PAGE, {"q": "two"}).content.decode()
    assert "bbb-two" in page and "room.a, room.b" in page and "node-a" in page


def test_last_activity_is_what_the_node_published_and_a_dash_before(staff: Client) -> None:
    """The column shows the node's last publication (put_node_activity), "-" without one,
    and the page says how precise it is (one heartbeat)."""
    echo = EchoHandler.handler_name
    add(echo, "ddd-active")
    add(echo, "eee-quiet")
    async_to_sync(get_registry().put_node_activity)("node-a", {"ddd-active": 1712345678.5})
    response = staff.get(PAGE, {"handler": echo})
    shown = {row["info"].id: row["active"] for row in response.context["rows"]}
    assert shown["ddd-active"] == datetime(2024, 4, 5, 19, 34, 38, 500000, tzinfo=UTC)
    assert shown["eee-quiet"] is None
    page = response.content.decode()
    assert "2024-04-05 19:34:38" in page and "Last activity (UTC)" in page
    assert "precise to one heartbeat" in page


def test_staff_without_the_permission_is_refused() -> None:
    User.objects.create_user("plain", password="pw", is_staff=True)
    client = Client()
    client.login(username="plain", password="pw")
    assert client.get(PAGE).status_code == 403


def test_a_registry_outage_is_a_message_not_an_error_page(
    staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any) -> Any:
        raise RegistryUnavailable("Redis registry at redis://10.0.0.9 unavailable (ids)")

    monkeypatch.setattr(live_admin, "_rows", down)
    response = staff.get(PAGE)
    assert response.status_code == 200
    text = response.content.decode()
    assert "The registry is unavailable" in text and "10.0.0.9" not in text


def test_actions_need_ticked_rows_and_a_text_and_skip_closed_sockets(staff: Client) -> None:
    calc = CalcHandler.handler_name
    nothing = staff.post(PAGE, {"action": "disconnect"}, follow=True)
    assert "Tick at least one connection" in nothing.content.decode()
    no_text = staff.post(PAGE, {"action": "notify", "sockets": [f"{calc} x"]}, follow=True)
    assert "A notification needs a text." in no_text.content.decode()
    gone = staff.post(PAGE, {"row_disconnect": f"{calc} no-such-socket"}, follow=True)
    assert "1 connection(s) had closed already." in gone.content.decode()
    unknown_handler = staff.post(PAGE, {"action": "disconnect", "sockets": ["not.a.handler x"]}, follow=True)
    assert "Tick at least one connection" in unknown_handler.content.decode()
