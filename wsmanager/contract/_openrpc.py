"""A handler's contract as an OpenRPC 1.3 document: ``manage.py wsmanager schema``.

:func:`openrpc_document` reads an :class:`~wsmanager.jsonrpc._dispatch.RpcHandler` class,
never its source:

* ``methods``: each ``@rpc`` method by its exposed name, with its params
  (names, JSON Schema from the annotations, ``required`` and ``default``
  from the signature), its result (from the return annotation), its
  docstring (first line as ``summary``, all of it as ``description``) and
  the errors it may answer with: the library's per-call codes (by reference
  to ``components.errors``), -32003 when it has a permission, and the
  application codes declared with :func:`wsmanager.contract.raises`. The
  built-in heartbeat ``rpc.ping`` is listed too.
* ``components.errors``: every code of the library (docs/protocol.md).
* ``x-notifications`` and ``x-client-methods``: what the handler declares
  it sends (``sends``, ``client_methods``; see :mod:`wsmanager.jsonrpc._declarations`),
  as OpenRPC method objects (notifications have no ``result``), and the
  built-in ``rpc.connected``. OpenRPC has no place for server-to-client
  calls, so these are specification extensions.
* ``x-handler``: the handler's ``handler_name`` and class.
* ``x-stream`` on a streaming method (an ``@rpc`` async generator,
  docs/protocol.md section 14): ``{"name": "item", "schema": ...}``, the
  schema of each ``rpc.stream.item`` (from ``AsyncIterator[T]``); its
  ``result`` is then the response that ends the stream, ``{"items": n}``,
  and its errors include -32020 and -32021.
* ``x-upload`` on a method that reads an upload (a parameter annotated
  ``AsyncIterator[T]``, left out of ``params``): ``{"name": <the
  parameter>, "schema": <T's schema>}``; its errors include -32020, -32021.
* ``x-encodings``: the encodings the handler accepts (``RpcHandler.encodings``),
  each with the WebSocket subprotocol that selects it (docs/protocol.md, section 15).

Not described: ``*args`` and ``**kwargs`` params (the document lists the
named ones only), and what the server does not know from types (value
ranges a method checks itself). The document is deterministic: the same
handler gives the same JSON, so it can be diffed and checked in.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from typing import Any, Final

from wsmanager_client import encodings as wire
from wsmanager_client import protocol
from wsmanager_client.streams import CANCELLED, STREAM_CANCELLED, TOO_MANY_STREAMS

from ..exceptions import ConfigurationError
from ..jsonrpc._declarations import (
    ClientMethod,
    Notification,
    Params,
    declared_errors,
    declared_params,
    json_schema,
)
from ..jsonrpc._dispatch import RpcHandler
from ..topics import MAX_TOPIC_LENGTH, NOT_AUTHORIZED, TOO_MANY, UNKNOWN_TOPIC, Topic

__all__ = ["OPENRPC_VERSION", "openrpc_document"]

#: The OpenRPC specification version the documents follow.
OPENRPC_VERSION: Final = "1.3.2"

#: Codes any call may be answered with, whatever the method does.
_PER_CALL: Final = (
    protocol.INVALID_PARAMS,
    protocol.INTERNAL_ERROR,
    protocol.SERVER_BUSY,
    protocol.RATE_LIMITED,
    protocol.UNAVAILABLE,
)


def _error_names() -> dict[int, str]:
    """Each library code's component name, from protocol's constant: -32602 -> "InvalidParams"."""
    names = {code: f"Error{abs(code)}" for code in protocol.SERVER_ERROR_MESSAGES}  # if unnamed
    for const in protocol.__all__:
        value = getattr(protocol, const)
        if isinstance(value, int) and value in protocol.SERVER_ERROR_MESSAGES:
            names[value] = "".join(word.capitalize() for word in const.split("_"))
    return names


def openrpc_document(handler: type[RpcHandler], *, version: str = "0.0.0") -> dict[str, Any]:
    """The OpenRPC document of ``handler``; ``version`` is the API's own (``info.version``).

    Raises ConfigurationError when ``sends`` or ``client_methods`` are not
    mappings of names to :class:`Notification` / :class:`ClientMethod`.
    """
    if not (isinstance(handler, type) and issubclass(handler, RpcHandler)):
        raise ConfigurationError(f"{handler!r} is not an RpcHandler class: it has no @rpc methods")
    names = _error_names()
    handler_name = handler.handler_name  # the registry namespace
    info: dict[str, Any] = {"title": handler_name, "version": version}
    own_doc = vars(handler).get("__doc__")  # not a base class's
    if own_doc:
        info["description"] = inspect.cleandoc(own_doc)
    methods = [_method(handler, exposed, names) for exposed in sorted(handler.rpc_methods)]
    methods += [_ping(), _close()]
    if handler.topics:
        methods += _topic_methods(handler)
    return {
        "openrpc": OPENRPC_VERSION,
        "info": info,
        "methods": methods,
        "components": {
            "errors": {
                names[code]: {"code": code, "message": message}
                for code, message in sorted(protocol.SERVER_ERROR_MESSAGES.items(), reverse=True)
            }
        },
        **({"x-topics": [_topic(t) for t in handler.topics]} if handler.topics else {}),
        "x-handler": {"name": handler_name, "class": f"{handler.__module__}.{handler.__qualname__}"},
        "x-encodings": [
            {"name": name, "subprotocol": wire.SUBPROTOCOLS[name]}
            for name in wire.ENCODINGS
            if name in handler.encodings
        ],
        "x-notifications": [
            *(_declared(handler, "sends", name, decl) for name, decl in _declarations(handler, "sends")),
            _connected(),
            *([_publication()] if handler.topics else []),
        ],
        "x-client-methods": [
            _declared(handler, "client_methods", name, decl)
            for name, decl in _declarations(handler, "client_methods")
        ],
    }


def _method(handler: type[RpcHandler], exposed: str, names: Mapping[int, str]) -> dict[str, Any]:
    method = handler.rpc_methods[exposed]
    fn = getattr(handler, method.attr)
    out: dict[str, Any] = {"name": exposed}
    out.update(_texts(inspect.getdoc(fn) or ""))
    params = [
        p
        for p in method.signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    out["params"] = [_param(p, method.hints.get(p.name, Any)) for p in params]
    kinds = {p.kind for p in params}
    if inspect.Parameter.POSITIONAL_ONLY in kinds:
        out["paramStructure"] = "by-position"
    elif inspect.Parameter.KEYWORD_ONLY in kinds:
        out["paramStructure"] = "by-name"
    else:
        out["paramStructure"] = "either"
    if method.is_stream:
        out["result"] = {"name": "result", "schema": _STREAM_END}
        out["x-stream"] = {"name": "item", "schema": json_schema(_item_hint(_return_hint(fn)))}
    else:
        out["result"] = {"name": "result", "schema": json_schema(_return_hint(fn))}
    codes = list(_PER_CALL)
    if method.permission is not None:
        codes.append(protocol.FORBIDDEN)
    errors: list[dict[str, Any]] = [{"$ref": f"#/components/errors/{names[code]}"} for code in codes]
    if method.upload is not None:
        out["x-upload"] = {"name": method.upload, "schema": json_schema(method.upload_item)}
    if method.is_stream or method.upload is not None:
        errors += [
            {"code": TOO_MANY_STREAMS, "message": "Too many streams"},
            {"code": CANCELLED, "message": STREAM_CANCELLED},
        ]
    errors += [{"code": e.code, "message": e.message} for e in declared_errors(fn)]
    out["errors"] = errors
    if isinstance(method.permission, str):
        out["x-permission"] = method.permission
    elif method.permission is not None:
        out["x-permission"] = getattr(method.permission, "__name__", "a permission check")
    return out


def _texts(doc: str) -> dict[str, str]:
    """``summary`` (the first line) and, when there is more, ``description`` (all of it)."""
    if not doc.strip():
        return {}
    lines = doc.strip().splitlines()
    return {"summary": lines[0]} if len(lines) == 1 else {"summary": lines[0], "description": doc.strip()}


def _param(param: inspect.Parameter, hint: Any) -> dict[str, Any]:
    schema = json_schema(hint)
    required = param.default is inspect.Parameter.empty
    if not required:
        try:
            json.dumps(param.default, allow_nan=False)
        except (TypeError, ValueError):
            pass  # a default that is not JSON (a sentinel): not shown
        else:
            schema = {**schema, "default": param.default}
    return {"name": param.name, "schema": schema, "required": required}


#: The response that ends a stream: how many items were sent.
_STREAM_END: Final = {
    "type": "object",
    "properties": {"items": {"type": "integer"}},
    "required": ["items"],
}


def _item_hint(hint: Any) -> Any:
    """``T`` of ``AsyncIterator[T]``, ``AsyncIterable[T]`` or ``AsyncGenerator[T, ...]``; else Any."""
    origin = typing.get_origin(hint)
    if origin in (AsyncIterator, AsyncIterable, AsyncGenerator) and typing.get_args(hint):
        return typing.get_args(hint)[0]
    return Any


def _return_hint(fn: Any) -> Any:
    try:
        return typing.get_type_hints(fn).get("return", Any)
    except Exception:  # unresolvable annotations: any result
        return Any


def _declarations(handler: type[RpcHandler], attr: str) -> list[tuple[str, Notification | ClientMethod]]:
    kind = Notification if attr == "sends" else ClientMethod
    declared = getattr(handler, attr)
    where = f"{handler.__qualname__}.{attr}"
    if not isinstance(declared, Mapping):
        raise ConfigurationError(f"{where} must map names to {kind.__name__} values, not {declared!r}")
    out: list[tuple[str, Notification | ClientMethod]] = []
    for name, decl in sorted(declared.items()):
        if not isinstance(name, str) or not name or name.startswith("rpc."):
            raise ConfigurationError(f"{where}: {name!r} is not a method name (nor may it start with 'rpc.')")
        if not isinstance(decl, kind):
            raise ConfigurationError(f"{where}[{name!r}] must be a {kind.__name__}, not {decl!r}")
        out.append((name, decl))
    return out


def _declared(
    handler: type[RpcHandler], attr: str, name: str, decl: Notification | ClientMethod
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    out.update(_texts(inspect.cleandoc(decl.description)))
    out["params"] = _declared_params(f"{handler.__qualname__}.{attr}[{name!r}]", decl.params)
    out["paramStructure"] = "by-position" if decl.by_position else "by-name"
    if isinstance(decl, ClientMethod):
        out["result"] = {"name": "result", "schema": json_schema(decl.result)}
    return out


def _declared_params(where: str, spec: Params) -> list[dict[str, Any]]:
    try:
        params = declared_params(spec)
    except TypeError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return [{"name": p.name, "schema": json_schema(p.annotation), "required": p.required} for p in params]


def _ping() -> dict[str, Any]:
    return {
        "name": "rpc.ping",
        "summary": "Heartbeat: answered at once, ahead of queued calls.",
        "params": [],
        "result": {"name": "result", "schema": {"enum": ["pong"]}},
    }


def _close() -> dict[str, Any]:
    return {
        "name": "rpc.close",
        "summary": "The client closes on purpose: sent (as a notification) just before its close frame.",
        "description": (
            "The socket is released at once and for good (never kept for connection recovery), "
            "whatever close code the server then reports; the server answers with a close frame "
            "carrying `code`. Only alone in its frame: inside a batch it is refused with -32600."
        ),
        "params": [
            {
                "name": "code",
                "description": "1000 or 3000-4999 (else 1000): the code on_disconnect gets",
                "schema": {"type": "integer"},
                "required": False,
            }
        ],
        "result": {"name": "result", "schema": {"type": "null"}},
    }


def _connected() -> dict[str, Any]:
    return {
        "name": "rpc.connected",
        "summary": "Sent first on every connection: the socket's id.",
        "params": [{"name": "id", "schema": {"type": "string"}, "required": True}],
        "paramStructure": "by-name",
    }


#: JSON Schema of a converter's value in a topic name.
_CONVERTER_SCHEMAS: Final[Mapping[str, dict[str, Any]]] = {
    "int": {"type": "integer", "minimum": 0},
    "str": {"type": "string", "pattern": "^[^/]+$"},
    "slug": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    "uuid": {"type": "string", "format": "uuid"},
    "path": {"type": "string"},
}
_POSITION: Final = {
    "type": "object",
    "properties": {"offset": {"type": "integer", "minimum": 0}, "epoch": {"type": "string"}},
    "required": ["offset", "epoch"],
}
_TOPIC_ERRORS: Final = (
    (UNKNOWN_TOPIC, "Unknown topic"),
    (NOT_AUTHORIZED, "Not authorized"),
    (TOO_MANY, "Too many subscriptions"),
)


def _topic(pattern: Topic) -> dict[str, Any]:
    """A topic pattern as ``x-topics`` lists it: its parameters, events and data."""
    out: dict[str, Any] = {"pattern": pattern.pattern}
    if pattern.description:
        out.update(_texts(inspect.cleandoc(pattern.description)))
    out["parameters"] = {
        name: _CONVERTER_SCHEMAS.get(converter, {}) for name, converter in pattern.parameters.items()
    }
    out["authorized"] = pattern.authorizer is not None or type(pattern).authorize is not Topic.authorize
    out["initialState"] = pattern.has_initial
    out["events"] = {name: json_schema(hint) for name, hint in sorted(pattern.events.items())}
    return out


def _topic_methods(handler: type[RpcHandler]) -> list[dict[str, Any]]:
    names = _error_names()
    per_call = [{"$ref": f"#/components/errors/{names[code]}"} for code in _PER_CALL]
    name = {"type": "string", "minLength": 1, "maxLength": MAX_TOPIC_LENGTH}
    subscribed = {
        "type": "object",
        "properties": {
            "topic": {"type": "string"},
            "offset": {"type": "integer", "minimum": 0},
            "epoch": {"type": "string"},
            "recovered": {"type": "boolean"},
            "state": {},
        },
        "required": ["topic", "offset", "epoch", "recovered"],
    }
    return [
        {
            "name": "rpc.subscribe",
            "summary": "Subscribe to a topic (x-topics lists the patterns), from a position if given.",
            "description": (
                "With `since`, the publications after it are sent as rpc.publication before the "
                "answer, in order, once (`recovered: true`), or none and `recovered: false` when "
                "the history no longer has them; `state` comes when the pattern has an initial "
                "state and the subscribe did not recover. See docs/protocol.md, section 13."
            ),
            "params": [
                {"name": "topic", "schema": name, "required": True},
                {"name": "since", "schema": _POSITION, "required": False},
            ],
            "paramStructure": "by-name",
            "result": {"name": "result", "schema": subscribed},
            "errors": [*per_call, *({"code": code, "message": text} for code, text in _TOPIC_ERRORS)],
        },
        {
            "name": "rpc.unsubscribe",
            "summary": "Leave a topic (not subscribed: not an error).",
            "params": [{"name": "topic", "schema": name, "required": True}],
            "paramStructure": "by-name",
            "result": {
                "name": "result",
                "schema": {
                    "type": "object",
                    "properties": {"topic": {"type": "string"}},
                    "required": ["topic"],
                },
            },
            "errors": per_call,
        },
    ]


def _publication() -> dict[str, Any]:
    return {
        "name": "rpc.publication",
        "summary": "One publication of a subscribed topic (x-topics: its events and data).",
        "params": [
            {"name": "topic", "schema": {"type": "string"}, "required": True},
            {"name": "offset", "schema": {"type": "integer", "minimum": 1}, "required": True},
            {"name": "epoch", "schema": {"type": "string"}, "required": True},
            {"name": "event", "schema": {"type": "string"}, "required": True},
            {"name": "data", "schema": {}, "required": True},
        ],
        "paramStructure": "by-name",
    }
