"""Mount handlers on URLs in one line, composing with Channels' routing.

::

    websocket_urlpatterns = [route("ws/chat/<str:room>/", ChatHandler)]
    application = ProtocolTypeRouter({
        "http": django_asgi_app,
        "websocket": websocket_app(websocket_urlpatterns),
    })

``route`` returns an ordinary URL pattern, usable in a ``URLRouter`` of your
own. :func:`websocket_app` routes the patterns as ``URLRouter`` does (with a
fallback that refuses unknown paths with HTTP 403 instead of crashing the
application) and, by default, gives handlers what Channels'
``AuthMiddlewareStack`` gives (``scope["cookies"]``, ``scope["session"]``,
``scope["user"]``) at a lower cost per handshake (:func:`_authenticate`), all in
one coroutine per socket (:class:`_Router`). Origins
are checked by every handler itself (see :mod:`wsmanager.connection._origin`),
so no origin validator is needed around it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import import_module
from typing import Any

from channels.auth import UserLazyObject, get_user
from channels.routing import URLRouter
from django.conf import settings
from django.http.cookie import parse_cookie
from django.urls import Resolver404, URLPattern, path, re_path
from django.utils.functional import LazyObject

from .. import _checks as checks  # registers wsmanager's system checks, "wsmanager" installed or not
from ..connection._refusals import Refusal, log_refusal, send_refusal
from ..observe._counters import Count, bump
from ._handler import WebSocketHandler

__all__ = ["route", "websocket_app"]

logger = logging.getLogger(__name__)


def route(pattern: str, handler: type[WebSocketHandler], **initkwargs: Any) -> URLPattern:
    """A URL pattern serving ``handler``; ``pattern`` is a regex when it starts with ``^``.

    ``initkwargs`` override the handler's class attributes for this route only
    (e.g. ``route("ws/feed/", FeedHandler, rate_limit=None)``); an unknown
    name raises ``TypeError`` here.
    """
    unknown = [key for key in initkwargs if key.startswith("_") or not hasattr(handler, key)]
    if unknown:
        raise TypeError(f"{handler.__name__} has no attribute(s) {', '.join(unknown)} to set per route")
    app: Any = handler.as_asgi(**initkwargs)
    pattern_obj: URLPattern = re_path(pattern, app) if pattern.startswith("^") else path(pattern, app)
    return pattern_obj


_NO_ROUTE = Refusal(
    "no_route",
    "no WebSocket route for this path",
    status=404,
    detail="no route() of websocket_app matches it",
)


async def _no_route(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Refuse a WebSocket handshake for a path no handler serves: HTTP 404 where the
    server can answer one (``websocket.http.response``), else 403 (daphne)."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            bump(Count.REFUSED_HANDSHAKE)
            log_refusal(_NO_ROUTE, scope, "")
            await send_refusal(scope, send, _NO_ROUTE)
        elif message["type"] == "websocket.disconnect":
            return


async def _authenticate(scope: dict[str, Any]) -> None:
    """Put in ``scope`` (the router's own copy) what Channels' ``AuthMiddlewareStack``
    gives a WebSocket handler: ``scope["cookies"]`` (as ``CookieMiddleware`` parses
    them), ``scope["session"]`` (the session store of the session cookie's key, loaded
    on first use, as ``SessionMiddleware`` makes it) and ``scope["user"]`` (as
    ``AuthMiddleware`` resolves it, through Channels' ``get_user``).

    A ``session`` already in the scope (set by a middleware above, or a test) is
    kept, as Channels keeps it, and its user looked up. A ``user`` already there is
    kept as it is (Channels would look the session's user up anyway and put it in
    a lazy user object; here the middleware above decides), and the session is
    then not loaded until first used (``await scope["session"].aload()`` in async
    code, or it loads in the event loop). Cheaper per handshake than Channels' stack:
    no copy of the scope of its own (three there), no wrapper around ``send``
    (Channels' session wrapper saves sessions and sets cookies on
    ``http.response.start`` only, which a WebSocket never sends, yet it runs on
    every frame), and a handshake without a session cookie gets ``AnonymousUser``
    without the database round trip (a hop to a thread): Channels' ``get_user``
    finds the same in the empty session.
    """
    from django.contrib.auth.models import AnonymousUser  # needs the app registry: at run time

    cookies: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name == b"cookie":  # the first Cookie header, as Channels reads it
            cookies = parse_cookie(value.decode("latin1"))
            break
    key = cookies.get(settings.SESSION_COOKIE_NAME)
    scope["cookies"] = cookies
    ours = "session" not in scope  # else a session middleware above made it: kept
    if ours:
        session: Any = LazyObject()
        session._wrapped = import_module(settings.SESSION_ENGINE).SessionStore(key)
        scope["session"] = session
    if "user" not in scope:  # else set above (a token middleware, a test): kept
        user: Any = UserLazyObject()
        # Our own session without a key is empty: anonymous, as get_user would find.
        user._wrapped = AnonymousUser() if ours and key is None else await get_user(scope)
        scope["user"] = user


def _is_as_asgi(app: Any) -> bool:
    """Whether ``app`` is Channels' ``as_asgi()`` wrapper itself, not a middleware that
    copied its attributes with ``functools.wraps`` (that one must run)."""
    consumer = getattr(app, "consumer_class", None)
    return consumer is not None and getattr(app, "__wrapped__", None) is consumer


class _Router:
    """Channels' ``URLRouter`` (the same matching, ``root_path``, nesting and
    ``url_route``), with the auth step, in one coroutine per socket.

    Channels' stack awaits a coroutine per layer for the socket's whole life (the
    auth middlewares, ``URLRouter``, the ``as_asgi`` wrapper), each holding its
    frame and its copy of the scope. This router makes one copy, authenticates in
    it (unless ``auth=False``; never for a path that matches none of its routes),
    and awaits a handler mounted with :func:`route` (any ``as_asgi()`` consumer)
    itself, built as ``as_asgi`` builds it; any other ASGI app (a middleware, a
    nested router) it awaits as ``URLRouter`` does.
    """

    #: Routes inside it are not endpoints when it is nested in a URLRouter (as URLRouter).
    _path_routing = True

    def __init__(self, routes: list[Any], *, auth: bool) -> None:
        self.routes = URLRouter(routes).routes  # checked and adjusted as URLRouter does
        self.auth = auth

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        path = scope.get("path_remaining", scope.get("path"))
        if path is None:
            raise ValueError("No 'path' key in connection scope, cannot route URLs")
        if "path_remaining" not in scope:  # the outermost router: root_path is ours to take off
            root_path = scope.get("root_path", "")
            if root_path and not path.startswith(root_path):
                raise ValueError(f"No route found for path {path!r}.")
            path = path[len(root_path) :]
        path = path.lstrip("/")
        for pattern in self.routes:
            try:
                match = pattern.pattern.match(path)
            except Resolver404:
                continue
            if not match:
                continue
            new_path, args, kwargs = match
            kwargs.update(pattern.default_args)
            outer = scope.get("url_route", {})
            inner = {  # the route's own copy: a nested router that fails leaves ours as it was
                **scope,
                "path_remaining": new_path,
                "url_route": {
                    "args": outer.get("args", ()) + args,
                    "kwargs": {**outer.get("kwargs", {}), **kwargs},
                },
            }
            app = pattern.callback
            if app is _no_route:
                return await app(inner, receive, send)
            if self.auth:
                await _authenticate(inner)
            if _is_as_asgi(app):  # what as_asgi's wrapper does, without its frame
                return await app.consumer_class(**app.consumer_initkwargs)(inner, receive, send)
            try:  # a nested router that matches nothing: the next route, as URLRouter does
                return await app(inner, receive, send)
            except Resolver404:
                continue
        if "path_remaining" in scope:
            raise Resolver404(f"No route found for path {path!r}.")
        raise ValueError(f"No route found for path {path!r}.")


def websocket_app(routes: Sequence[Any], *, auth: bool = True) -> Any:
    """An ASGI app serving ``routes`` (:class:`_Router`): routing as URLRouter, a refusing
    fallback, and auth.

    Logs ``wsmanager.W002`` at WARNING when ``"wsmanager"`` is not in
    ``INSTALLED_APPS`` (``manage.py check`` may not have imported wsmanager).
    """
    for message in checks.installation_warnings():
        logger.warning("%s (%s) %s", message.msg, message.id, message.hint)
    fallback: Any = _no_route
    return _Router([*routes, re_path(r"", fallback)], auth=auth)
