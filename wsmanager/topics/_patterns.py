"""Topic patterns: which topic names a handler offers, and who may subscribe.

A pattern is written in Django's URL-converter syntax (``"tasks"``,
``"user.<int:id>"``, ``"order.<slug:ref>"``); a topic name matches it when
the whole name does, and the converters' values (``to_python``) become the
keyword arguments of ``authorize`` and ``initial``. The patterns of a
handler are tried in their order; the first that matches wins.

Guarantees: a name longer than :data:`MAX_TOPIC_LENGTH` never reaches a
pattern (it is refused before any regex runs); ``authorize`` and
``initial`` are awaited once per subscribe, sync callables run in a thread
with Django's database clean-up (``database_sync_to_async``).
Non-guarantee: authorization is checked when a socket subscribes, not again
later (unsubscribe it yourself with ``manager.remove_from_group`` when a
right is withdrawn: the group is ``topic:<name>``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.urls.resolvers import RoutePattern

from ..exceptions import ConfigurationError

__all__ = ["MAX_TOPIC_LENGTH", "Authorize", "Initial", "Topic", "group_of", "match", "topic"]

#: The longest topic name (characters) a client may subscribe to or a server publish to.
MAX_TOPIC_LENGTH = 200
#: The registry group of a topic's subscribers: ``topic:<name>``.
GROUP_PREFIX = "topic:"

_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")

Authorize = Callable[..., Awaitable[bool] | bool]
Initial = Callable[..., Awaitable[Any] | Any]


def group_of(name: str) -> str:
    """The registry group whose members are the subscribers of topic ``name``."""
    return f"{GROUP_PREFIX}{name}"


async def _call(fn: Callable[..., Any], socket: Any, kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(socket, **kwargs)
    result = await database_sync_to_async(fn)(socket, **kwargs)
    if inspect.isawaitable(result):  # a callable object whose __call__ is async
        return await result
    return result


@dataclass(frozen=True)
class Topic:
    """One topic pattern of a handler. Build it with :func:`topic`.

    ``history_size`` / ``history_ttl`` bound the history kept per topic
    matching this pattern (None: ``WSMANAGER["TOPIC_HISTORY_SIZE"]`` /
    ``["TOPIC_HISTORY_TTL"]``). Subclass it and override :meth:`authorize` /
    :meth:`initial` if you prefer methods to callables.
    """

    pattern: str
    authorizer: Authorize | None = None
    initializer: Initial | None = None
    history_size: int | None = None
    history_ttl: float | None = None
    #: Event name -> the annotation of its data, for the generated contract only
    #: (OpenRPC ``x-topics``, TypeScript): publishing is not checked against it.
    events: Mapping[str, Any] = field(default_factory=dict, compare=False)
    description: str = ""
    _route: RoutePattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern:
            raise ConfigurationError(f"a topic pattern is a non-empty string, not {self.pattern!r}")
        if self.history_size is not None and (
            isinstance(self.history_size, bool)
            or not isinstance(self.history_size, int)
            or self.history_size < 0
        ):
            raise ConfigurationError(f"topic {self.pattern!r}: history_size is an integer, 0 or more")
        if self.history_ttl is not None and not (
            isinstance(self.history_ttl, int | float) and 0 < self.history_ttl < float("inf")
        ):
            raise ConfigurationError(f"topic {self.pattern!r}: history_ttl is a positive number of seconds")
        try:
            route = RoutePattern(self.pattern, is_endpoint=True)
            route.regex  # noqa: B018 - compiled now, so a bad converter fails at import time
        except Exception as exc:
            raise ConfigurationError(f"topic pattern {self.pattern!r} is invalid: {exc}") from exc
        object.__setattr__(self, "_route", route)
        if not isinstance(self.events, Mapping) or not all(isinstance(e, str) and e for e in self.events):
            raise ConfigurationError(f"topic {self.pattern!r}: events maps event names to annotations")

    @property
    def parameters(self) -> dict[str, str]:
        """Each converter parameter and its converter's name (``{"id": "int"}``)."""
        return {
            found["parameter"]: found["converter"] or "str" for found in _PARAMETER.finditer(self.pattern)
        }

    def match(self, name: str) -> dict[str, Any] | None:
        """The converters' values when ``name`` matches the whole pattern; None otherwise."""
        found = self._route.match(name)
        if found is None:
            return None
        rest, _args, kwargs = found
        if rest != "" or self.name(**kwargs) != name:  # "user.05" is not "user.5": one name per topic
            return None
        return dict(kwargs)

    def name(self, **kwargs: Any) -> str:
        """The topic name of these converter values (``to_url``): the one canonical spelling."""
        converters = self._route.converters

        def put(found: re.Match[str]) -> str:
            key = found["parameter"]
            return str(converters[key].to_url(kwargs[key]))

        return _PARAMETER.sub(put, self.pattern)

    async def authorize(self, socket: Any, **kwargs: Any) -> bool:
        """Whether ``socket`` (the handler instance: ``.user``, ``.scope``) may subscribe."""
        if self.authorizer is None:
            return True
        return bool(await _call(self.authorizer, socket, kwargs))

    @property
    def has_initial(self) -> bool:
        return self.initializer is not None or type(self).initial is not Topic.initial

    async def initial(self, socket: Any, **kwargs: Any) -> Any:
        """The state sent in the subscribe result (``state``), when the pattern has one."""
        if self.initializer is None:
            return None
        return await _call(self.initializer, socket, kwargs)


def topic(
    pattern: str,
    authorize: Authorize | None = None,
    *,
    initial: Initial | None = None,
    history_size: int | None = None,
    history_ttl: float | None = None,
    events: Mapping[str, Any] | None = None,
    description: str = "",
) -> Topic:
    """A topic pattern for a handler's ``topics`` list (see the module).

    ``authorize(socket, **kwargs)`` returns whether the socket may subscribe
    (None: anyone may); ``initial(socket, **kwargs)`` the state sent with the
    subscribe result. Both may be coroutines or plain functions. ``events``
    (event name -> annotation of its data) and ``description`` document the
    topic in the generated contract (``manage.py wsmanager schema`` /
    ``typescript``).
    """
    return Topic(pattern, authorize, initial, history_size, history_ttl, dict(events or {}), description)


def match(patterns: Iterable[Topic], name: str) -> tuple[Topic, dict[str, Any]] | None:
    """The first pattern that ``name`` matches, with its converters' values."""
    for pattern in patterns:
        kwargs = pattern.match(name)
        if kwargs is not None:
            return pattern, kwargs
    return None
