"""The live socket of the demo: topics over JSON-RPC (docs/topics.md).

Route: ``/ws/live/``. Topics:

* ``tasks``: anyone may subscribe; events ``created``, ``updated``,
  ``deleted`` with data ``{"id", "title", "done"}``, published after commit
  by the model observer below (saves and deletes anywhere: the HTTP API,
  the admin, a shell) and by the bulk view (``bulk_create`` sends no
  signal). The subscribe result's ``state`` is ``{"tasks": [...]}``, the
  first :data:`STATE_LIMIT` tasks.
* ``user.<int:id>``: only the logged-in user ``id``; event ``notice`` with
  ``{"text"}``, published when that user's session changes tasks through
  the HTTP API.

Method: ``changes(limit=50)``, a stream (docs/protocol.md section 14): the
kept publications of ``tasks``, oldest first, one item each, paced by the
page's credit (the page's "Replay the history" button).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from asgiref.sync import sync_to_async

from wsmanager import RpcHandler, observe_model, rpc, topic

from .models import Task

#: The most tasks a subscribe's ``state`` (and ``GET /api/tasks``) lists.
STATE_LIMIT = 1000


class TaskJson(TypedDict):
    """A task as the topic ``tasks`` and the HTTP API show it."""

    id: int
    title: str
    done: bool


class Notice(TypedDict):
    text: str


class Change(TypedDict):
    """One kept publication of ``tasks``, as ``changes`` streams it."""

    offset: int
    event: str
    task: TaskJson


#: The most changes one ``changes`` call replays.
CHANGES_LIMIT = 1000


def task_list() -> list[dict[str, Any]]:
    return [task.to_json() for task in Task.objects.all()[:STATE_LIMIT]]


async def tasks_state(socket: Any) -> dict[str, Any]:
    return {"tasks": await sync_to_async(task_list)()}


async def own_user(socket: Any, id: int) -> bool:
    """Only the logged-in user ``id`` may subscribe to ``user.<id>``."""
    user = socket.scope.get("user")
    return user is not None and user.is_authenticated and user.pk == id


class LiveHandler(RpcHandler):
    """A page that watches topics."""

    handler_name = "live"
    #: As the chat's: the library's default unless the environment says otherwise.
    max_connections_per_address = int(os.environ.get("DEMO_MAX_PER_ADDRESS", "256")) or None
    topics = [
        topic(
            "tasks",
            initial=tasks_state,
            events={"created": TaskJson, "updated": TaskJson, "deleted": TaskJson},
            description="Every task change, after commit; the initial state is `{tasks: [...]}`.",
        ),
        topic(
            "user.<int:id>",
            authorize=own_user,
            history_size=100,
            events={"notice": Notice},
            description="Only the logged-in user `id`: what that user's session did.",
        ),
    ]

    @rpc
    async def changes(self, limit: int = 50) -> AsyncIterator[Change]:
        """The latest ``limit`` (at most 1000) kept changes of ``tasks``, oldest first, as a stream."""
        read = await self.manager.ahistory("tasks", limit=max(0, min(limit, CHANGES_LIMIT)))
        for publication in read.publications:
            task = json.loads(publication.data_json)
            yield {"offset": publication.offset, "event": publication.event, "task": task}


observe_model(Task, LiveHandler, topic="tasks", serialize=Task.to_json)
