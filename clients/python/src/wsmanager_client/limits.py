"""What the client accepts from a server, and the counts of what it refused (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Stats"]


@dataclass(slots=True)
class Stats:
    """Counts over a client's life (across its connections) of what it did not deliver."""

    duplicates_dropped: int = 0
