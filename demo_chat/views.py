"""Plain sync Django views that reach sockets from outside any socket.

They show the point of the registry: a view, running in a worker thread,
sends to one socket by id or to a whole room with one call, wherever the
socket's process is. Every error of these views answers JSON:
``{"error": "..."}`` (405 for a wrong method; unknown paths under /api/
answer a JSON 404 too; a CSRF refusal under /api/ a JSON 403).

Who may call them is :mod:`demo_chat.access`: the API token, a session
(with DEBUG off: staff with the admin's permission ``wsmanager.manage_connections``)
that passes Django's CSRF check, or, with DEBUG on,
anyone but another site's page. Error bodies name no internal detail (a
Redis address, an exception's text): those go to the log.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import csrf
from django.views.decorators.csrf import csrf_exempt, csrf_protect, ensure_csrf_cookie

import wsmanager
from wsmanager import (
    ConnectionClosed,
    DeliveryError,
    InvokeError,
    InvokeTimeout,
    RegistryUnavailable,
    RemoteError,
    SocketNotFound,
    WsManagerError,
)
from wsmanager.node import get_node

from .access import decide
from .handlers import MAX_TEXT, ChatHandler, room_group

View = Callable[..., HttpResponse]

logger = logging.getLogger("demo_chat")

#: What a 503 says, by the failure's class (the first match); the details are logged.
UNAVAILABLE: list[tuple[type[WsManagerError], str]] = [
    (RegistryUnavailable, "the socket registry is unavailable"),
    (DeliveryError, "the channel layer is unavailable"),
    (ConnectionClosed, "the socket closed before answering"),
    (InvokeError, "the call failed in the socket's process"),
    (WsManagerError, "the service is unavailable"),
]


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def unavailable(exc: WsManagerError) -> JsonResponse:
    logger.warning("API request failed: %s: %s", type(exc).__name__, exc)
    message = next(text for kind, text in UNAVAILABLE if isinstance(exc, kind))
    return error(503, message)


def api(method: str) -> Callable[[View], View]:
    """An API view: only ``method`` (else 405), then :func:`demo_chat.access.decide`
    (400 or 403; Django's CSRF check for sessions), and errors as JSON:
    ValueError 400, SocketNotFound 404, any other WsManagerError 503, anything
    else 500 (logged)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def run(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except ValueError as exc:
                return error(400, str(exc))
            except SocketNotFound as exc:
                return error(404, "no open socket with this id", id=exc.socket_id)
            except WsManagerError as exc:
                return unavailable(exc)
            except Exception:
                logger.exception("API view %s failed", view.__name__)
                return error(500, "internal error")

        checked = csrf_protect(run)

        @csrf_exempt  # the middleware's check is replaced by the one below, for sessions only
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != method:
                response = error(405, f"use {method}")
                response["Allow"] = method
                return response
            access = decide(request)
            if not access.allowed:
                return error(access.status, access.reason)
            return (checked if access.csrf else run)(request, *args, **kwargs)

        return wrapper

    return decorate


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: a JSON 403 under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error(403, f"CSRF check failed: {reason}")
    return csrf.csrf_failure(request, reason=reason)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 for unknown paths under /api/, as JSON (the catch-all route in urls.py)."""
    return error(404, "no such resource", path=request.path)


def json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def message_text(request: HttpRequest) -> str:
    text = json_body(request).get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('body needs a non-empty string "text"')
    if len(text) > MAX_TEXT:
        raise ValueError(f"text is longer than {MAX_TEXT} characters")
    return text


@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    """The chat page; it sets the ``csrftoken`` cookie that session-authenticated API calls echo."""
    return render(request, "demo_chat/index.html")


@api("POST")
def socket_message(request: HttpRequest, socket_id: str) -> HttpResponse:
    text = message_text(request)
    manager = ChatHandler.manager
    room = manager.get(socket_id).path_kwargs.get("room")
    manager.notify(socket_id, "message", **{"from": None, "name": None, "room": room, "text": text})
    return JsonResponse({"delivered": 1}, status=202)


@api("POST")
def room_message(request: HttpRequest, room: str) -> HttpResponse:
    message = {"from": None, "name": None, "room": room, "text": message_text(request)}
    delivered = ChatHandler.manager.notify_group(room_group(room), "message", **message)
    return JsonResponse({"delivered": delivered}, status=202)


@api("GET")
def room_sockets(request: HttpRequest, room: str) -> HttpResponse:
    return JsonResponse(sorted(ChatHandler.manager.group_members(room_group(room))), safe=False)


@api("GET")
def process_stats(request: HttpRequest) -> HttpResponse:
    """This process's node: its id, its open sockets, and its delivery counters.

    Per process: behind a load balancer each request sees one process.
    """
    node = get_node()
    counts = dict(sorted(wsmanager.stats().items()))
    body = {"node": node.id, "sockets": len(node.sockets), "counters": counts}
    return JsonResponse(body)


@api("GET")
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of this process (``wsmanager.ops.metrics``), under the API's access rule.

    Prometheus scrapes it with the API token (``authorization`` in its
    scrape config). Without prometheus-client installed: 404.
    """
    try:
        from wsmanager.ops.metrics import metrics_view
    except ImportError:
        return error(404, "metrics need prometheus-client (pip install 'wsmanager[metrics]')")
    return metrics_view(request)


@api("POST")
def socket_invoke(request: HttpRequest, socket_id: str) -> HttpResponse:
    """Call a client method: 200 result, 502 client error, 504 timeout, 404 unknown id."""
    body = json_body(request)
    method, params, timeout = body.get("method"), body.get("params", []), body.get("timeout", 10)
    if not isinstance(method, str) or not method:
        raise ValueError('body needs a string "method"')
    if not isinstance(params, list | dict):
        raise ValueError('"params" must be an array or an object')
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise ValueError('"timeout" must be a number of seconds in (0, 60]')
    try:  # params as one value: named params may be called anything, "timeout" included
        result = ChatHandler.manager.invoke_params(socket_id, method, params, timeout=timeout)
    except RemoteError as exc:
        body = {"error": {"code": exc.code, "message": exc.message, "data": exc.data}}
        return JsonResponse(body, status=502)
    except InvokeTimeout:
        return error(504, f"no answer within {timeout}s")
    return JsonResponse({"result": result})
