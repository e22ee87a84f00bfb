"""The test helpers themselves (``wsmanager.testing``): ``RpcCommunicator`` with a
logged-in user and an origin, the refusal it raises, and ``reset``."""

from __future__ import annotations

import pickle

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import override_settings

from wsmanager import RpcHandler, route, rpc, websocket_app
from wsmanager.testing import HandshakeRefused, RpcCommunicator, session_cookie


class WhoAmI(RpcHandler):
    handler_name = "tests.testing.whoami"
    require_authenticated = True

    @rpc
    async def whoami(self) -> str:
        return str(self.scope["user"].username)


class Open(RpcHandler):
    handler_name = "tests.testing.open"

    @rpc
    async def host(self) -> str:
        return dict(self.scope["headers"]).get(b"host", b"").decode()


application = websocket_app([route("ws/me/", WhoAmI), route("ws/open/", Open)])  # with auth


@pytest.mark.django_db(transaction=True)
async def test_user_logs_in_through_a_real_session() -> None:
    """``user=``: a session row, its cookie, and Channels' auth middleware finds the user."""
    user = await get_user_model().objects.acreate(username="alice")
    async with RpcCommunicator(application, "/ws/me/", user=user) as client:
        assert await client.call("whoami") == "alice"
        assert await WhoAmI.manager.auser_sockets(user.pk) == [client.id]
    assert await Session.objects.acount() == 1


@pytest.mark.django_db(transaction=True)
async def test_the_session_cookie_joins_cookies_already_given() -> None:
    user = await get_user_model().objects.acreate(username="bob")
    headers = [(b"cookie", b"theme=dark")]
    async with RpcCommunicator(application, "/ws/me/", headers=headers, user=user) as client:
        assert await client.call("whoami") == "bob"
        cookie = dict(client.scope["headers"])[b"cookie"]
        assert cookie.startswith(b"theme=dark; sessionid=")


@pytest.mark.django_db(transaction=True)
async def test_session_cookie_is_a_cookie_header_for_that_user() -> None:
    user = await get_user_model().objects.acreate(username="carol")
    name, _, key = (await session_cookie(user)).partition("=")
    assert name == "sessionid"
    session = await Session.objects.aget(session_key=key)
    assert session.get_decoded()["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db(transaction=True)
async def test_without_a_user_the_handshake_is_refused_with_the_reason() -> None:
    with pytest.raises(HandshakeRefused, match=r"socket refused: HTTP 403: authentication required"):
        async with RpcCommunicator(application, "/ws/me/"):
            pass


@pytest.mark.django_db(transaction=True)
async def test_origin_sends_the_matching_host_so_a_page_of_the_site_is_admitted() -> None:
    """``origin="http://localhost:8000"`` is a page of the site served on port 8000: the
    Host header says so, and a scheme-less ``localhost`` pattern admits it."""
    with override_settings(ALLOWED_HOSTS=["localhost"]):
        async with RpcCommunicator(application, "/ws/open/", origin="http://localhost:8000") as client:
            assert await client.call("host") == "localhost:8000"


@pytest.mark.django_db(transaction=True)
async def test_a_host_header_given_is_kept_so_a_foreign_page_is_refused() -> None:
    """A page on another port than the socket's is another site: refused, and it says which."""
    headers = [(b"host", b"localhost:9000")]
    with override_settings(ALLOWED_HOSTS=["localhost"]):
        client = RpcCommunicator(application, "/ws/open/", headers=headers, origin="http://localhost:8000")
        accepted, status = await client.connect()
        await client.disconnect()
    assert (accepted, status) == (False, 403)
    assert client.refusal is not None
    assert client.refusal.reason == "origin 'http://localhost:8000' is not allowed"


def test_handshake_refused_keeps_its_facts_through_pickle() -> None:
    error = HandshakeRefused(404, None, "no WebSocket route for this path")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.code, copy.reason, str(copy)) == (
        404,
        None,
        "no WebSocket route for this path",
        "socket refused: HTTP 404: no WebSocket route for this path",
    )
    assert isinstance(copy, AssertionError)
