"""Plain sync Django views that reach sockets from outside any socket.

They show the point of the registry: a view, running in a worker thread,
sends to one socket by id or to a whole room with one call, wherever the
socket's process is. Every error of these views answers JSON:
``{"error": "..."}`` (405 for a wrong method; unknown paths under /api/
answer a JSON 404 too).

With DEBUG off these views need a staff user or the header
``Authorization: Bearer <DEMO_API_TOKEN>`` (settings), so that the open
internet cannot spam sockets.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

import wsmanager
from wsmanager import InvokeTimeout, RemoteError, SocketNotFound, WsManagerError
from wsmanager.node import get_node

from .handlers import MAX_TEXT, ChatHandler, room_group

View = Callable[..., HttpResponse]


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _authorized(request: HttpRequest) -> bool:
    """Open in DEBUG; otherwise staff users or the API token only."""
    if settings.DEBUG:
        return True
    token = getattr(settings, "DEMO_API_TOKEN", "")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip() if scheme == "Bearer" else ""
    user = getattr(request, "user", None)
    is_staff = bool(user is not None and user.is_authenticated and user.is_staff)
    return is_staff or bool(token and secrets.compare_digest(given, token))


def api(method: str) -> Callable[[View], View]:
    """An API view: only ``method`` (else 405), the DEBUG-off guard (403), no
    CSRF (token or staff auth), and errors as JSON: ValueError 400,
    SocketNotFound 404, any other WsManagerError 503."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != method:
                response = error(405, f"use {method}")
                response["Allow"] = method
                return response
            if not _authorized(request):
                return error(403, "staff user or API token required")
            try:
                return view(request, *args, **kwargs)
            except ValueError as exc:
                return error(400, str(exc))
            except SocketNotFound as exc:
                return error(404, "no open socket with this id", id=exc.socket_id)
            except WsManagerError as exc:
                return error(503, str(exc))

        return wrapper

    return decorate


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


def index(request: HttpRequest) -> HttpResponse:
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
    args, kwargs = (params, {}) if isinstance(params, list) else ([], params)
    try:
        result = ChatHandler.manager.invoke(socket_id, method, *args, timeout=timeout, **kwargs)
    except RemoteError as exc:
        body = {"error": {"code": exc.code, "message": exc.message, "data": exc.data}}
        return JsonResponse(body, status=502)
    except InvokeTimeout:
        return error(504, f"no answer within {timeout}s")
    return JsonResponse({"result": result})
