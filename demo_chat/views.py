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

from django.conf import settings
from django.db import transaction
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
from .live import STATE_LIMIT, LiveHandler, task_list
from .models import MAX_TITLE, Task

#: The most titles one ``POST /api/tasks/bulk`` creates.
MAX_BULK = 100

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


def api(*methods: str) -> Callable[[View], View]:
    """An API view: only ``methods`` (else 405), then :func:`demo_chat.access.decide`
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
            if request.method not in methods:
                response = error(405, f"use {' or '.join(methods)}")
                response["Allow"] = ", ".join(methods)
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


# -- tasks (docs/demo.md#tasks): saves and deletes are published to "tasks" after commit ---------
def title_of(value: Any, what: str = "title") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'"{what}" must be a non-empty string')
    if len(value) > MAX_TITLE:
        raise ValueError(f'"{what}" is longer than {MAX_TITLE} characters')
    return value.strip()


def notice(request: HttpRequest, text: str) -> None:
    """Tell the acting user's pages (topic ``user.<pk>``), after commit, when a session acts."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        LiveHandler.manager.publish_on_commit(f"user.{user.pk}", "notice", {"text": text})


@api("GET", "POST")
def tasks(request: HttpRequest) -> HttpResponse:
    """GET: the tasks (at most 1000) and the position of ``tasks`` they are current as of.
    POST ``{"title"}``: 201 with the new task (published as ``created`` after commit)."""
    if request.method == "GET":
        # The position first: every publication up to it is in the list read after it.
        position = LiveHandler.manager.history("tasks", limit=0).position
        return JsonResponse({"tasks": task_list(), "topic": position.to_json(), "limit": STATE_LIMIT})
    title = title_of(json_body(request).get("title"))
    with transaction.atomic():
        task = Task.objects.create(title=title)
        notice(request, f"you created task {task.pk}")
    return JsonResponse(task.to_json(), status=201)


@api("PATCH", "DELETE")
def task(request: HttpRequest, task_id: int) -> HttpResponse:
    """PATCH ``{"done"}``: 200 with the task; DELETE: 204. 404 for an unknown id."""
    with transaction.atomic():
        found = Task.objects.select_for_update().filter(pk=task_id).first()
        if found is None:
            return error(404, "no such task", id=task_id)
        if request.method == "DELETE":
            found.delete()
            notice(request, f"you deleted task {task_id}")
            return HttpResponse(status=204)
        done = json_body(request).get("done")
        if not isinstance(done, bool):
            raise ValueError('body needs a boolean "done"')
        found.done = done
        found.save(update_fields=["done"])
        notice(request, f"you marked task {task_id} {'done' if done else 'not done'}")
    return JsonResponse(found.to_json())


@api("POST")
def tasks_bulk(request: HttpRequest) -> HttpResponse:
    """POST ``{"titles": [...]}`` (1 to 100): 201 with the tasks, created in one transaction;
    one ``created`` per task, in order, after the commit (``bulk_create`` sends no signal,
    so the view publishes them itself). 409, rolled back, publishing nothing, when the
    list would then hold more than ``DEMO_MAX_TASKS``."""
    titles = json_body(request).get("titles")
    if not isinstance(titles, list) or not 1 <= len(titles) <= MAX_BULK:
        raise ValueError(f'"titles" must be a list of 1 to {MAX_BULK} titles')
    cleaned = [title_of(t, "titles[]") for t in titles]
    try:
        with transaction.atomic():
            created = Task.objects.bulk_create([Task(title=t) for t in cleaned])
            if any(t.pk is None for t in created):  # a backend that does not return ids
                created = list(Task.objects.order_by("-id")[: len(cleaned)])[::-1]
            for t in created:
                LiveHandler.manager.publish_on_commit("tasks", "created", t.to_json())
            notice(request, f"you created {len(created)} tasks")
            if Task.objects.count() > settings.DEMO_MAX_TASKS:  # counted after the insert: no race
                raise TooMany()
    except TooMany:  # rolled back: nothing created, nothing published
        return error(409, f"the list holds at most {settings.DEMO_MAX_TASKS} tasks")
    return JsonResponse({"tasks": [t.to_json() for t in created]}, status=201)


class TooMany(Exception):
    """A bulk request would take the list past ``DEMO_MAX_TASKS``."""
