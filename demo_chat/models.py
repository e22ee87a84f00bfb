"""The demo's one model: a task list that every open ``/tasks/`` page shows live."""

from __future__ import annotations

from typing import Any

from django.db import models

#: The longest task title (characters).
MAX_TITLE = 200


class Task(models.Model):
    """A task: a title, done or not. Saves and deletes are published to the topic
    ``tasks`` after commit (demo_chat/live.py)."""

    title = models.CharField(max_length=MAX_TITLE)
    done = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title

    def to_json(self) -> dict[str, Any]:
        """What the topic ``tasks`` and the HTTP API show: ``{"id", "title", "done"}``."""
        return {"id": self.pk, "title": self.title, "done": self.done}
