"""Registry backends and the process-wide backend instance.

The backend named by ``WSMANAGER["REGISTRY"]["BACKEND"]`` is built once per
process on first use. :func:`reset_registry` drops it (tests, or after
changing settings).
"""

from __future__ import annotations

from django.utils.module_loading import import_string

from .. import _state
from .._conf import get_settings
from ..exceptions import ConfigurationError
from ._base import PARKED, Claim, ConnectionInfo, Departure, RegistryBackend
from ._journal import Journal
from .memory import InMemoryRegistry

__all__ = [
    "PARKED",
    "Claim",
    "ConnectionInfo",
    "Departure",
    "InMemoryRegistry",
    "RegistryBackend",
    "get_journal",
    "get_registry",
    "reset_registry",
]

_instance: RegistryBackend | None = None
_journal_instance: Journal | None = None


def get_journal() -> Journal:
    """The process's journal (connection recovery), made by its registry on first call."""
    global _journal_instance
    if _journal_instance is None:
        _journal_instance = get_registry().make_journal(get_settings().recovery_journal_length)
    return _journal_instance


def get_registry() -> RegistryBackend:
    """The process's registry backend, built from settings on first call."""
    global _instance
    if _instance is None:
        conf = get_settings()
        try:
            cls = import_string(conf.registry_backend)
        except ImportError as exc:
            raise ConfigurationError(
                f'WSMANAGER["REGISTRY"]["BACKEND"] {conf.registry_backend!r} cannot be imported: {exc}'
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, RegistryBackend)):
            raise ConfigurationError(
                f"{conf.registry_backend!r} is not a wsmanager.registry.RegistryBackend subclass"
            )
        try:
            _instance = cls(**conf.registry_options)
        except TypeError as exc:
            raise ConfigurationError(
                f'WSMANAGER["REGISTRY"]["OPTIONS"] do not fit {conf.registry_backend}: {exc}'
            ) from exc
    return _instance


def reset_registry() -> None:
    """Forget the process's backend instance (and journal); the next call builds a new one."""
    global _instance, _journal_instance
    _instance = _journal_instance = None


_state.owns(__name__, reset_registry)
