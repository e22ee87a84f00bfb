"""Topics: clients subscribe to what they may see, and get what they missed.

* :mod:`._patterns`: ``topic(...)`` patterns in Django's URL-converter syntax,
  with ``authorize`` and ``initial``;
* :mod:`._history`, :mod:`._redis`: each topic's recent publications with
  their positions (offset, epoch), in memory or on Redis streams;
* :mod:`._subscriptions`: ``rpc.subscribe`` / ``rpc.unsubscribe`` of one socket,
  and the gate that orders replayed and live publications;
* :mod:`._store`: the process's history store and each topic's bounds;
* :mod:`._observers`: model saves and deletes published after commit.

Publishing is ``Manager.apublish`` / ``publish`` / ``publish_on_commit``
(:class:`wsmanager.Manager`), which appends here and fans out to the group
``topic:<name>``. See docs/topics.md and docs/protocol.md ("Topics").
"""

from ._history import History, InMemoryHistory, Position, Publication, Read
from ._observers import observe_model
from ._patterns import GROUP_PREFIX, MAX_TOPIC_LENGTH, Topic, group_of, topic
from ._subscriptions import NOT_AUTHORIZED, TOO_MANY, UNKNOWN_TOPIC

__all__ = [
    "GROUP_PREFIX",
    "MAX_TOPIC_LENGTH",
    "NOT_AUTHORIZED",
    "TOO_MANY",
    "UNKNOWN_TOPIC",
    "History",
    "InMemoryHistory",
    "Position",
    "Publication",
    "Read",
    "Topic",
    "group_of",
    "observe_model",
    "topic",
]
