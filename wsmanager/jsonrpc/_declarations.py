"""What a handler promises its clients: declarations, and annotations as JSON Schema.

A leaf module (it imports nothing from wsmanager), read by the generators
:mod:`wsmanager.contract._openrpc` and :mod:`wsmanager.contract._typescript`.

An :class:`~wsmanager.jsonrpc._dispatch.RpcHandler` already describes what clients may
call: its ``@rpc`` methods, their signatures, annotations and docstrings.
What it *sends* is declared here, as class attributes of the handler::

    class ChatHandler(RpcHandler):
        sends = {"message": Notification({"room": str, "text": str}, "A new message")}
        client_methods = {"confirm": ClientMethod({"question": str}, result=bool, by_position=True)}

        @rpc
        @raises(ErrorCode(4000, "Text is empty"))
        async def send(self, text: str) -> int: ...

Guarantees and non-guarantees:

* Declarations are documentation and types for the generated contract: the
  server does not check that what a handler sends matches what it declared.
* :func:`json_schema` turns the annotations the dispatcher checks (``str``,
  ``int``, ``float``, ``bool``, ``None``, ``list[X]``, ``dict[str, X]``,
  unions) into JSON Schema, and also ``Any``, ``Literal``, ``TypedDict``
  classes and dataclasses (dataclasses describe results: params arrive as
  plain JSON objects). Anything else becomes ``{}`` (any value), never an error.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, Union

__all__ = [
    "ClientMethod",
    "ErrorCode",
    "Notification",
    "Param",
    "Params",
    "declared_errors",
    "declared_params",
    "json_schema",
    "raises",
]

F = TypeVar("F", bound=Callable[..., Any])
_RAISES = "__wsmanager_raises__"

#: Params of a declaration: name -> annotation (in order), or a ``TypedDict``
#: class (its ``NotRequired`` keys become optional params).
Params = Mapping[str, Any] | type


@dataclass(frozen=True)
class Notification:
    """A notification the handler sends to its clients (no answer is expected).

    ``params`` are sent by name (one JSON object, the client's handler gets
    it as its one argument) unless ``by_position`` is true (a JSON array in
    the mapping's order, the client's handler gets them as its arguments).
    """

    params: Params = field(default_factory=dict)
    description: str = ""
    by_position: bool = False


@dataclass(frozen=True)
class ClientMethod:
    """A method of the client that the handler calls with ``invoke`` and awaits.

    ``result`` is the annotation of what the client answers. ``params`` and
    ``by_position`` as for :class:`Notification`.
    """

    params: Params = field(default_factory=dict)
    result: Any = Any
    description: str = ""
    by_position: bool = False


@dataclass(frozen=True)
class ErrorCode:
    """An application error code a method may answer with (``raise RpcError(code, ...)``)."""

    code: int
    message: str


class Param(NamedTuple):
    """One declared param: its name, annotation and whether it must be sent."""

    name: str
    annotation: Any
    required: bool


def raises(*errors: ErrorCode) -> Callable[[F], F]:
    """Declare the application errors a method may answer with; stacks with ``@rpc``."""
    for error in errors:
        if not isinstance(error, ErrorCode):
            raise TypeError(f"raises() takes ErrorCode values, not {error!r}")

    def mark(fn: F) -> F:
        setattr(fn, _RAISES, (*getattr(fn, _RAISES, ()), *errors))
        return fn

    return mark


def declared_errors(fn: Any) -> tuple[ErrorCode, ...]:
    """The errors declared on ``fn`` with :func:`raises`, in declaration order."""
    return tuple(getattr(fn, _RAISES, ()))


def declared_params(spec: Params) -> list[Param]:
    """The params of a declaration, in order; raises TypeError for a malformed one."""
    if isinstance(spec, type):
        if not typing.is_typeddict(spec):
            raise TypeError(f"params must be a mapping or a TypedDict, not the class {spec.__name__}")
        # include_extras keeps NotRequired/Required: under ``from __future__ import
        # annotations`` the class's own __required_keys__ cannot see them.
        hints = typing.get_type_hints(spec, include_extras=True)
        required: frozenset[str] = getattr(spec, "__required_keys__", frozenset(hints))
        return [_typeddict_key(name, hint, name in required) for name, hint in hints.items()]
    if not isinstance(spec, Mapping) or not all(isinstance(name, str) for name in spec):
        raise TypeError(f"params must map names to annotations, not {spec!r}")
    return [Param(name, hint, True) for name, hint in spec.items()]


def _typeddict_key(name: str, hint: Any, required: bool) -> Param:
    origin = typing.get_origin(hint)
    if origin is typing.NotRequired or origin is typing.Required:
        return Param(name, typing.get_args(hint)[0], origin is typing.Required)
    return Param(name, hint, required)


def json_schema(hint: Any) -> dict[str, Any]:
    """JSON Schema (draft-07 vocabulary) of the values an annotation allows; ``{}`` when unknown."""
    return _schema(hint, ())


_SIMPLE: Mapping[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _schema(hint: Any, seen: tuple[Any, ...]) -> dict[str, Any]:
    if hint is Any or hint is object:
        return {}
    if hint is None or hint is type(None):
        return {"type": "null"}
    simple = _simple_type(hint)
    if simple is not None:
        return {"type": simple}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return _schema(args[0], seen)
    if origin in (Union, types.UnionType):
        return _union([_schema(arg, seen) for arg in args])
    if origin is typing.Literal:
        values = [v for v in args if _is_json_scalar(v)]
        return {"enum": values} if len(values) == len(args) else {}
    if hint is list or origin in (list, Sequence, tuple, set, frozenset):
        if args and origin is not tuple:
            return {"type": "array", "items": _schema(args[0], seen)}
        return {"type": "array"}
    if hint is dict or origin in (dict, Mapping):
        if len(args) == 2 and args[0] is str:
            value = _schema(args[1], seen)
            return {"type": "object", "additionalProperties": value} if value else {"type": "object"}
        return {"type": "object"}
    if hint in seen:  # a recursive TypedDict or dataclass: stop at any object
        return {"type": "object"}
    if isinstance(hint, type) and typing.is_typeddict(hint):
        return _object(hint.__name__, declared_params(hint), (*seen, hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = [Param(f.name, hints.get(f.name, Any), _field_required(f)) for f in dataclasses.fields(hint)]
        return _object(hint.__name__, fields, (*seen, hint))
    return {}


def _simple_type(hint: Any) -> str | None:
    try:
        return _SIMPLE.get(hint)
    except TypeError:  # an unhashable annotation
        return None


def _object(title: str, params: list[Param], seen: tuple[Any, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "title": title,
        "type": "object",
        "properties": {p.name: _schema(p.annotation, seen) for p in params},
    }
    required = [p.name for p in params if p.required]
    if required:
        schema["required"] = required
    return schema


def _field_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _union(members: list[dict[str, Any]]) -> dict[str, Any]:
    """``anyOf`` of the members, or one ``type`` list when each member is a bare type."""
    if any(m == {} for m in members):
        return {}
    if all(set(m) == {"type"} and isinstance(m["type"], str) for m in members):
        names = list(dict.fromkeys(m["type"] for m in members))
        return {"type": names[0] if len(names) == 1 else names}
    return {"anyOf": members}


def _is_json_scalar(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    return isinstance(value, float) and json.dumps(value) not in ("NaN", "Infinity", "-Infinity")
