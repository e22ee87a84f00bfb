"""What wsmanager tells about itself: observers, counters and log throttling.

Public: :class:`Observer` (subclass it), :data:`hub` (the process's
observers), :class:`Count` and :func:`stats` (the drop and refusal
counters, also :func:`wsmanager.stats`). Private modules: ``_hub``,
``_counters``, ``_logs``.
"""

from ._counters import Count, stats
from ._hub import Observer, hub

__all__ = ["Count", "Observer", "hub", "stats"]
