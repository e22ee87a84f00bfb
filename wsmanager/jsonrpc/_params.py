"""How an ``@rpc`` method takes its params: bound to its signature, checked
against its annotations, before it runs.

Binding follows Python's own rules (``inspect.Signature.bind``): positional
params (a JSON array) fill parameters in order, named params (an object)
by name. Checks cover simple annotations: ``str``, ``int``, ``float``,
``bool``, ``list``, ``dict``, ``None``, unions and ``list[X]`` /
``dict[str, X]``; ``bool`` is never an ``int``, an ``int`` is a ``float``.
Anything else (a class, ``Any``, an unresolvable string annotation) passes
unchecked. A mismatch raises :class:`BadParams`, which the RPC layer answers
with -32602 before the method runs.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Union

from wsmanager_client import protocol

__all__ = ["BadParams", "Method", "Permission", "matches"]

#: A Django permission name, or a callable taking the handler (sync or async).
Permission = str | Callable[[Any], bool | Awaitable[bool]]


class BadParams(Exception):
    """The params do not fit the method; the message says how."""

    #: The error code of the answer (read by :func:`wsmanager.observe._hub.error_code`).
    jsonrpc_code: Final = protocol.INVALID_PARAMS


@dataclass(frozen=True)
class Method:
    attr: str
    signature: inspect.Signature
    hints: Mapping[str, Any]
    is_async: bool
    permission: Permission | None = None
    thread_sensitive: bool = True
    #: The parameter names when every one is positional-or-keyword (no ``*``/``**``, no
    #: keyword-only), else None; ``required``: how many of them have no default. Params
    #: that fit those names (an array of ``required`` to all of them, or an object of
    #: some of them with every required one) bind without ``Signature.bind``: the same
    #: result, the common call made cheaper.
    plain: tuple[str, ...] | None = field(default=None, compare=False)
    required: int = field(default=0, compare=False)
    #: The annotations checked per parameter (``*args`` and ``**kwargs`` are not).
    checked: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    #: An async generator function: the call is answered with a stream (wsmanager.jsonrpc._streams).
    is_stream: bool = False
    #: The parameter annotated ``AsyncIterator[T]`` that receives the client's upload, and ``T``
    #: (the items are checked against it); the signature above leaves it out.
    upload: str | None = None
    upload_item: Any = None

    def __post_init__(self) -> None:
        params = self.signature.parameters.values()
        simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        checked = tuple(
            (p.name, self.hints[p.name]) for p in params if p.name in self.hints and p.kind not in variadic
        )
        object.__setattr__(self, "plain", tuple(p.name for p in params) if simple else None)
        object.__setattr__(self, "required", sum(p.default is p.empty for p in params))
        object.__setattr__(self, "checked", checked)

    @classmethod
    def of(
        cls, attr: str, fn: Callable[..., Any], permission: Permission | None = None, sensitive: bool = True
    ) -> Method:
        """Describe the handler method ``fn`` (its first parameter, ``self``, is dropped)."""
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]  # drop self
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable annotations: bind only, no type checks
            hints = {}
        hints.pop("return", None)
        is_async = inspect.iscoroutinefunction(fn)
        is_stream = inspect.isasyncgenfunction(fn)
        upload = next((p for p in params if _iterator_item(hints.get(p.name)) is not _NOT_ITERATOR), None)
        if upload is None:
            signature = sig.replace(parameters=params)
            return cls(attr, signature, hints, is_async, permission, sensitive, is_stream=is_stream)
        if is_stream:
            raise TypeError(
                f"{attr}: a streaming method (an async generator) cannot also read an upload "
                f"({upload.name}): a method streams or reads an upload, not both"
            )
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if not is_async or not all(p.kind in named for p in params):
            raise TypeError(
                f"{attr}: a method taking an upload ({upload.name}) must be async def, with "
                "no positional-only, *args or **kwargs parameters"
            )
        item = _iterator_item(hints.pop(upload.name))
        rest = [p for p in params if p is not upload]
        return cls(
            attr,
            sig.replace(parameters=rest),
            hints,
            is_async,
            permission,
            sensitive,
            upload=upload.name,
            upload_item=item,
        )

    def bind(self, params: tuple[Any, ...] | dict[str, Any]) -> inspect.BoundArguments:
        """Bind and check ``params``; :class:`BadParams` when they do not fit."""
        arguments = _plain_arguments(self.plain, self.required, params)
        if arguments is not None:
            bound = inspect.BoundArguments(self.signature, arguments)
        else:
            signature = self.signature
            try:
                bound = signature.bind(**params) if isinstance(params, dict) else signature.bind(*params)
            except TypeError as exc:
                raise BadParams(str(exc)) from None
        arguments = bound.arguments
        for pname, hint in self.checked:
            if pname in arguments and not matches(arguments[pname], hint):
                raise BadParams(f"{pname} must be {_describe(hint)}")
        return bound


_NOT_ITERATOR: Final = object()


def _iterator_item(hint: Any) -> Any:
    """``T`` of ``AsyncIterator[T]`` or ``AsyncIterable[T]`` (``Any`` when bare); else a marker."""
    if hint in (AsyncIterator, AsyncIterable):
        return Any
    if typing.get_origin(hint) in (AsyncIterator, AsyncIterable):
        args = typing.get_args(hint)
        return args[0] if args else Any
    return _NOT_ITERATOR


def _plain_arguments(
    plain: tuple[str, ...] | None, required: int, params: tuple[Any, ...] | dict[str, Any]
) -> dict[str, Any] | None:
    """What ``Signature.bind`` would bind ``params`` to, when they fit ``plain`` names of
    which the first ``required`` have no default; None for everything else (bind decides)."""
    if plain is None:
        return None
    if isinstance(params, tuple):
        return dict(zip(plain, params, strict=False)) if required <= len(params) <= len(plain) else None
    if len(params) < required or not all(name in params for name in plain[:required]):
        return None
    arguments = {name: params[name] for name in plain if name in params}
    return arguments if len(arguments) == len(params) else None


def matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a simple annotation; unknown annotations pass."""
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(matches(value, arg) for arg in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is list or origin is list:
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(matches(v, args[0]) for v in value))
    if hint is dict or origin is dict:
        args = typing.get_args(hint)
        return isinstance(value, dict) and (
            len(args) != 2 or all(matches(v, args[1]) for v in value.values())
        )
    return True


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
