"""Model observers: a model's saves and deletes published to topics after commit.

One declaration::

    observe_model(Task, LiveHandler, topic="tasks", serialize=task_json)

connects Django's ``post_save`` and ``post_delete`` for ``Task``: each save
publishes ``created`` or ``updated``, each delete ``deleted``, with
``serialize(instance)`` as data, once the transaction of the database the
signal names (``using``) commits (``publish_on_commit``); nothing goes out
when it rolls back. ``topic`` is a name, or a function of the instance
returning a name or a list of names (``lambda t: ["tasks", f"user.{t.owner_id}"]``).
The data is serialized when the signal fires (a deleted row still has its
fields then), and published after the commit.

What Django's signals miss, so what no observer sees (publish yourself,
with ``manager.publish_on_commit`` inside the same transaction):

* ``QuerySet.bulk_create()`` sends no ``post_save``: publish one ``created``
  per object it returns;
* ``QuerySet.update()`` sends nothing: read the ids first (or
  ``update(...)`` then re-read), publish ``updated`` per row;
* ``QuerySet.delete()`` does send ``post_delete`` per row, unless the
  model's deletion takes Django's fast path (no signals, no cascades
  with receivers): with an observer connected it never does, since the
  receiver disables it;
* raw SQL (``cursor.execute``, ``RawSQL``), migrations' data operations,
  other programs writing to the database: nothing; publish where you write,
  or have the page refetch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from django.db.models.signals import post_delete, post_save

__all__ = ["Publisher", "observe_model"]

TopicOf = str | Callable[[Any], str | Iterable[str]]


class Publisher(Protocol):
    """What an observer publishes through: a handler's manager."""

    def publish_on_commit(self, topic: str, event: str, data: Any, *, using: str | None = None) -> None: ...


def _publisher(target: Any) -> Publisher:
    if hasattr(target, "publish_on_commit"):
        return target  # type: ignore[no-any-return]
    manager = getattr(target, "manager", None)
    if manager is None or not hasattr(manager, "publish_on_commit"):
        raise TypeError(f"observe_model needs a handler class or its manager, not {target!r}")
    return manager  # type: ignore[no-any-return]


def _topics(topic: TopicOf, instance: Any) -> list[str]:
    names = topic(instance) if callable(topic) else topic
    return [names] if isinstance(names, str) else list(names)


def observe_model(
    model: type[Any],
    target: Any,
    *,
    topic: TopicOf,
    serialize: Callable[[Any], Any],
    events: Iterable[str] = ("created", "updated", "deleted"),
) -> Callable[[], None]:
    """Publish ``model``'s saves and deletes after commit (see the module).

    ``target``: a handler class (its ``manager``) or a manager. ``events``:
    which of ``created``, ``updated``, ``deleted`` to publish. Returns a
    function that disconnects the observer. Declaring the same model,
    target and topic again replaces the earlier observer (a module imported
    twice publishes once).
    """
    wanted = frozenset(events)
    unknown = wanted - {"created", "updated", "deleted"}
    if unknown:
        raise ValueError(f"unknown events {sorted(unknown)}: use created, updated, deleted")
    publisher = _publisher(target)

    def saved(sender: Any, instance: Any, created: bool, using: str, raw: bool = False, **_: Any) -> None:
        event = "created" if created else "updated"
        if raw or event not in wanted:  # raw: loaddata, the row is not the app's doing
            return
        data = serialize(instance)
        for name in _topics(topic, instance):
            publisher.publish_on_commit(name, event, data, using=using)

    def deleted(sender: Any, instance: Any, using: str, **_: Any) -> None:
        if "deleted" not in wanted:
            return
        data = serialize(instance)
        for name in _topics(topic, instance):
            publisher.publish_on_commit(name, "deleted", data, using=using)

    shown = topic if isinstance(topic, str) else getattr(topic, "__qualname__", repr(topic))
    uid = f"wsmanager.topics.observe:{model._meta.label}:{publisher!r}:{shown}"
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=uid)

    def disconnect() -> None:
        post_save.disconnect(sender=model, dispatch_uid=uid)
        post_delete.disconnect(sender=model, dispatch_uid=uid)

    return disconnect
