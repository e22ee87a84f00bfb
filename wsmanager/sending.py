"""Deprecated: :class:`Manager` and :func:`get_manager` live in :mod:`wsmanager.manager`.

Importing this module still works and warns once (``DeprecationWarning``).
"""

from __future__ import annotations

import warnings

from .manager import Manager, get_manager

__all__ = ["Manager", "get_manager"]

warnings.warn(
    "wsmanager.sending is deprecated; import Manager and get_manager from wsmanager.manager",
    DeprecationWarning,
    stacklevel=2,
)
