"""``route`` and ``websocket_app``: paths, converters, regexes, refusals, auth, and
composition with Channels' routers and origin validators."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from django.urls import URLPattern, path

from tests.handlers import EchoHandler, HelloHandler, application
from wsmanager import route, websocket_app
from wsmanager.handlers import _routing as routing_module


async def hello(app: Any, path: str) -> dict[str, Any]:
    """Connect to ``path``, return HelloHandler's report, and disconnect."""
    comm = WebsocketCommunicator(app, path)
    accepted, _ = await comm.connect()
    assert accepted, path
    report: dict[str, Any] = json.loads(await comm.receive_from())
    await comm.disconnect()
    return report


@pytest.mark.parametrize("path", ["/ws/nowhere/", "/", "/ws/echo", "/ws/rooms/lobby/seven/"])
async def test_unknown_path_is_refused_without_crashing(path: str) -> None:
    """A path no handler serves is refused (HTTP 403) and the app ends cleanly."""
    comm = WebsocketCommunicator(application, path)
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()  # raises if the application crashed


async def test_unknown_path_leaves_nothing_in_the_registry() -> None:
    """A refused unknown path registers no socket under any handler."""
    comm = WebsocketCommunicator(application, "/ws/nowhere/")
    await comm.connect()
    await comm.disconnect()
    assert await EchoHandler.manager.acount() == 0
    assert await HelloHandler.manager.acount() == 0


async def test_path_converters_reach_the_handler_typed() -> None:
    """``<str:room>/<int:seat>`` arrive in ``path_kwargs`` as str and int."""
    report = await hello(application, "/ws/rooms/lobby/42/")
    assert report["path_kwargs"] == {"room": "lobby", "seat": 42}


async def test_regex_route_captures_named_groups() -> None:
    """A pattern starting with ``^`` is a regex; its named groups are the kwargs."""
    report = await hello(application, "/ws/re/abc/07/")
    assert report["path_kwargs"] == {"slug": "abc", "num": "07"}


@pytest.mark.parametrize("path", ["/ws/re/ABC/07/", "/ws/re/abc/7/", "/ws/re/abc/07/x/"])
async def test_regex_route_refuses_non_matching_paths(path: str) -> None:
    """Paths that do not match the regex fall through to the refusal."""
    comm = WebsocketCommunicator(application, path)
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()


def test_route_builds_path_or_regex_patterns() -> None:
    """``route`` returns a URLPattern: a path pattern, or a regex for ``^...``."""
    plain = route("ws/a/<int:n>/", EchoHandler)
    regex = route(r"^ws/b/(?P<n>\d+)/$", EchoHandler)
    assert isinstance(plain, URLPattern)
    assert isinstance(regex, URLPattern)
    assert plain.pattern.regex.match("ws/a/1/")
    assert regex.pattern.regex.match("ws/b/1/")
    assert not regex.pattern.regex.match("ws/b/x/")


async def test_route_composes_with_a_plain_url_router() -> None:
    """``route`` patterns work inside Channels' own URLRouter."""
    app = URLRouter([route("chat/<slug:room>/", HelloHandler)])
    report = await hello(app, "/chat/my-room/")
    assert report["path_kwargs"] == {"room": "my-room"}


@pytest.mark.parametrize(
    ("origin", "admitted"), [(b"http://testserver", True), (b"http://evil.example", False)]
)
async def test_websocket_app_composes_with_channels_origin_validators(origin: bytes, admitted: bool) -> None:
    """Wrapped in Channels' AllowedHostsOriginValidator, a foreign Origin is refused by the
    validator even though the handler itself (``allowed_origins=["*"]``) would let it in."""
    inner = websocket_app([route("ws/hello/", HelloHandler, allowed_origins=["*"])], auth=False)
    app = AllowedHostsOriginValidator(inner)
    comm = WebsocketCommunicator(app, "/ws/hello/", headers=[(b"origin", origin)])
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        accepted, _ = await comm.connect()
    assert accepted is admitted
    if admitted:
        assert json.loads(await comm.receive_from())["path_kwargs"] == {}
    assert await HelloHandler.manager.acount() == (1 if admitted else 0)
    await comm.disconnect()


class StackReport(EchoHandler):
    """Sends the frames its ``on_connect`` runs under, outermost first."""

    async def on_connect(self) -> None:
        names, frame = [], sys._getframe()
        while frame is not None:
            names.append(frame.f_code.co_qualname)
            frame = frame.f_back
        await self.send_frame(json.dumps(names[::-1]))


@pytest.mark.parametrize("auth", [True, False])
async def test_a_socket_awaits_one_router_coroutine_for_its_whole_life(auth: bool) -> None:
    """Routing, the auth step and the handler's creation take one coroutine, held for
    the socket's life: not a coroutine per layer (auth middlewares, URLRouter, as_asgi),
    each holding its frame and a copy of the scope."""
    app = websocket_app([route("ws/stack/", StackReport)], auth=auth)
    comm = WebsocketCommunicator(app, "/ws/stack/")
    assert (await comm.connect())[0]
    stack = json.loads(await comm.receive_from())
    await comm.disconnect()
    handler = stack.index("WebSocketHandler.__call__")
    assert stack[handler - 1 : handler + 1] == ["_Router.__call__", "WebSocketHandler.__call__"]
    assert not [name for name in stack if "URLRouter" in name or name.endswith("as_asgi.<locals>.app")]


async def test_a_nested_router_that_matches_nothing_falls_through_to_the_refusal() -> None:
    """Channels' own URLRouter among the routes: its paths are served; a path under its
    prefix that it does not serve goes on to the next routes, here the refusal."""
    app = websocket_app([path("nested/", URLRouter([route("hello/", HelloHandler)]))], auth=False)
    assert (await hello(app, "/nested/hello/"))["path_kwargs"] == {}
    comm = WebsocketCommunicator(app, "/nested/nowhere/")
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()


async def test_a_failed_nested_match_leaves_nothing_for_the_next_route() -> None:
    """After a nested router that matched a prefix and then nothing, the next route gets
    only its own kwargs, as with URLRouter: the failed match's stay in its copy."""
    app = websocket_app(
        [
            path("ws/<str:room>/", URLRouter([route("chat/", HelloHandler)])),
            route(r"^ws/(?P<other>\w+)/x/$", HelloHandler),
        ],
        auth=False,
    )
    assert (await hello(app, "/ws/lobby/x/"))["path_kwargs"] == {"other": "lobby"}
    assert (await hello(app, "/ws/lobby/chat/"))["path_kwargs"] == {"room": "lobby"}


async def test_a_middleware_wrapping_a_handler_with_functools_wraps_runs() -> None:
    """A middleware that copies the handler app's attributes (``functools.wraps``) is an
    app of its own: the router runs it, not the handler beneath it directly."""
    inner = HelloHandler.as_asgi()

    @functools.wraps(inner)
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        marked = {**scope, "url_route": {"args": (), "kwargs": {"via": "middleware"}}}
        return await inner(marked, receive, send)

    app = websocket_app([path("ws/wrapped/", middleware)], auth=False)
    assert (await hello(app, "/ws/wrapped/"))["path_kwargs"] == {"via": "middleware"}


async def test_websocket_app_nests_in_a_url_router_and_keeps_the_outer_kwargs() -> None:
    """Inside Channels' URLRouter, ``websocket_app`` routes the rest of the path and
    the handler sees the outer route's kwargs with its own."""
    inner = websocket_app([route("rooms/<str:room>/", HelloHandler)], auth=False)
    app = URLRouter([path("t/<int:tenant>/", inner)])
    report = await hello(app, "/t/7/rooms/lobby/")
    assert report["path_kwargs"] == {"tenant": 7, "room": "lobby"}


async def test_the_root_path_is_taken_off_before_routing() -> None:
    """Served under a prefix (``root_path``), routes match the path after it; a path
    outside the prefix is an error of the server's configuration, raised."""
    app = websocket_app([route("ws/hello/", HelloHandler)], auth=False)
    comm = WebsocketCommunicator(app, "/prefix/ws/hello/")
    comm.scope["root_path"] = "/prefix"
    assert (await comm.connect())[0]
    await comm.disconnect()
    outside = WebsocketCommunicator(app, "/elsewhere/ws/hello/")
    outside.scope["root_path"] = "/prefix"
    with pytest.raises(ValueError, match="No route found"):
        await outside.connect()


async def test_an_unknown_path_is_refused_without_the_auth_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handshake no handler serves costs no session or user lookup, cookie or not."""

    async def no_lookup(scope: Any) -> Any:
        raise AssertionError("the user was looked up")

    monkeypatch.setattr(routing_module, "get_user", no_lookup)
    app = websocket_app([route("ws/hello/", HelloHandler)])
    comm = WebsocketCommunicator(app, "/ws/nowhere/", headers=[(b"cookie", b"sessionid=abc")])
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()


async def test_one_handler_on_two_routes_shares_its_manager() -> None:
    """Sockets of one handler class on different routes are in one namespace."""
    app = websocket_app([route("a/", HelloHandler), route("b/", HelloHandler)], auth=False)
    first = WebsocketCommunicator(app, "/a/")
    second = WebsocketCommunicator(app, "/b/")
    assert (await first.connect())[0]
    assert (await second.connect())[0]
    assert await HelloHandler.manager.acount() == 2
    await first.disconnect()
    await second.disconnect()


@pytest.mark.django_db
async def test_auth_wrapped_app_sees_an_anonymous_user() -> None:
    """With ``auth=True`` (the default) the handler sees an anonymous user."""
    app = websocket_app([route("ws/hello/", HelloHandler)])
    report = await hello(app, "/ws/hello/")
    assert report["user_id"] is None


class ScopeReport(EchoHandler):
    """Sends what the auth step put in its scope."""

    async def on_connect(self) -> None:
        session = self.scope["session"]
        report = {
            "cookies": self.scope["cookies"],
            "session_key": session.session_key,
            "user": str(self.scope["user"]),
            "authenticated": self.scope["user"].is_authenticated,
        }
        await self.send_frame(json.dumps(report))


async def scope_report(app: Any, headers: list[tuple[bytes, bytes]], **scope: Any) -> dict[str, Any]:
    comm = WebsocketCommunicator(app, "/ws/scope/", headers=headers)
    comm.scope.update(scope)
    accepted, _ = await comm.connect()
    assert accepted
    report: dict[str, Any] = json.loads(await comm.receive_from())
    await comm.disconnect()
    return report


async def test_a_handshake_without_a_session_cookie_is_anonymous_without_a_database_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cookies and an empty session as Channels' stack gives them, and AnonymousUser,
    without Channels' user lookup (a hop to a thread and the database)."""

    async def no_lookup(scope: Any) -> Any:
        raise AssertionError("the user was looked up")

    monkeypatch.setattr(routing_module, "get_user", no_lookup)
    app = websocket_app([route("ws/scope/", ScopeReport)])
    report = await scope_report(app, [(b"cookie", b"theme=dark; lang=fr"), (b"cookie", b"second=ignored")])
    assert report == {
        "cookies": {"theme": "dark", "lang": "fr"},  # the first Cookie header, as Channels reads it
        "session_key": None,
        "user": "AnonymousUser",
        "authenticated": False,
    }


async def test_a_session_cookie_makes_channels_look_the_user_up_in_that_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the session cookie, Channels' ``get_user`` runs on the scope, whose session is
    the store of that key (real logins: tests/e2e/test_users_e2e.py)."""
    from django.contrib.auth.models import AnonymousUser

    class Found(AnonymousUser):
        def __str__(self) -> str:
            return "found"

    asked: list[str | None] = []

    async def lookup(scope: Any) -> Any:
        asked.append(scope["session"].session_key)
        return Found()

    monkeypatch.setattr(routing_module, "get_user", lookup)
    app = websocket_app([route("ws/scope/", ScopeReport)])
    report = await scope_report(app, [(b"cookie", b"sessionid=abc123def456")])
    assert asked == ["abc123def456"]
    assert report["user"] == "found" and report["session_key"] == "abc123def456"


async def test_a_session_set_above_without_a_cookie_is_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A middleware above that finds the session elsewhere (a token in the query string)
    gets that session's user, cookie or not, as with Channels' stack."""
    from django.contrib.auth.models import AnonymousUser

    class Found(AnonymousUser):
        def __str__(self) -> str:
            return "found"

    class Session:
        session_key = "from a token"

    async def lookup(scope: Any) -> Any:
        assert scope["session"].session_key == "from a token"
        return Found()

    monkeypatch.setattr(routing_module, "get_user", lookup)
    app = websocket_app([route("ws/scope/", ScopeReport)])
    report = await scope_report(app, [], session=Session())
    assert report["user"] == "found" and report["session_key"] == "from a token"


async def test_a_user_and_session_set_above_the_app_are_kept() -> None:
    """A middleware above websocket_app (a token check, a test) decides the user: kept."""
    from django.contrib.auth.models import AnonymousUser

    class Named(AnonymousUser):
        def __str__(self) -> str:
            return "set above"

    class Session:
        session_key = "from above"

    app = websocket_app([route("ws/scope/", ScopeReport)])
    report = await scope_report(app, [], user=Named(), session=Session())
    assert report["user"] == "set above" and report["session_key"] == "from above"


async def test_route_kwargs_override_class_attributes_for_that_route_only() -> None:
    """route(..., max_message_size=10) applies to sockets of that route, not the class."""
    app = websocket_app([route("ws/tiny/", EchoHandler, max_message_size=10)], auth=False)
    communicator = WebsocketCommunicator(app, "/ws/tiny/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data="x" * 11)
    closed = await communicator.receive_output(2)
    assert closed["type"] == "websocket.close" and closed["code"] == 1009
    assert EchoHandler.max_message_size != 10


def test_route_refuses_unknown_or_private_kwargs() -> None:
    """An attribute the handler does not have (or a private one) is a TypeError at once."""
    with pytest.raises(TypeError, match="max_mesage_size"):
        route("ws/x/", EchoHandler, max_mesage_size=10)
    with pytest.raises(TypeError, match="_queue"):
        route("ws/x/", EchoHandler, _queue=None)
