"""The ``WSMANAGER`` settings dict: defaults, reading, and validation.

Every key and its default is listed in :data:`DEFAULTS` and in
docs/settings.md. :func:`get_settings` reads them once and caches them until
Django's ``setting_changed`` signal says ``WSMANAGER`` changed (as
``override_settings`` does in tests); invalid values are reported by the
Django system checks in :mod:`wsmanager._checks` at start-up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings as django_settings
from django.core.signals import setting_changed

from . import _state

__all__ = ["DEFAULTS", "Settings", "get_settings", "validate"]

DEFAULTS: Final[Mapping[str, Any]] = {
    # Where connection entries live. BACKEND is a dotted path to a
    # RegistryBackend subclass; OPTIONS are passed to its constructor.
    "REGISTRY": {"BACKEND": "wsmanager.registry.memory.InMemoryRegistry", "OPTIONS": {}},
    # The channels layer alias used for cross-process delivery (None: local only).
    "CHANNEL_LAYER": "default",
    # Default timeout in seconds of server-to-client invoke().
    "INVOKE_TIMEOUT": 30.0,
    # How often (seconds) a process refreshes its liveness in the registry.
    "HEARTBEAT_INTERVAL": 5.0,
    # Frames queued per socket before the socket is closed with 1013.
    "MAX_OUTGOING_QUEUE": 1000,
    # Origins allowed to open sockets (patterns, see wsmanager.connection._origin);
    # None: the site's ALLOWED_HOSTS.
    "ALLOWED_ORIGINS": None,
    # Refuse handshakes that carry no Origin header (non-browser clients).
    "REQUIRE_ORIGIN": False,
    # Addresses or networks of the proxies whose X-Forwarded-For is believed
    # (see wsmanager.connection._addresses); empty: the TCP peer is the client.
    "TRUSTED_PROXIES": [],
    # Seconds over which SIGTERM closes this process's sockets (1012), in
    # batches, before the server shuts down (see wsmanager.ops.drain); 0: at once.
    "DRAIN_PERIOD": 5.0,
    # Connection recovery (wsmanager._recovery): the default window in seconds
    # of every RpcHandler that does not set recovery_window; None: off.
    "RECOVERY_WINDOW": None,
    # Most notifications each handler's journal keeps (the oldest go first).
    "RECOVERY_JOURNAL_LENGTH": 10_000,
    # Topics (wsmanager.topics): publications kept per topic for a client that
    # comes back with a position, at most this many and none older than TTL
    # seconds (None: no age bound); a topic pattern may set its own.
    "TOPIC_HISTORY_SIZE": 1000,
    "TOPIC_HISTORY_TTL": 3600.0,
}


@dataclass(frozen=True)
class Settings:
    """The effective settings, defaults filled in."""

    registry_backend: str
    registry_options: Mapping[str, Any]
    channel_layer: str | None
    invoke_timeout: float
    heartbeat_interval: float
    max_outgoing_queue: int
    allowed_origins: tuple[str, ...] | None
    require_origin: bool
    trusted_proxies: tuple[str, ...]
    drain_period: float
    recovery_window: float | None
    recovery_journal_length: int
    topic_history_size: int
    topic_history_ttl: float | None


def _raw() -> dict[str, Any]:
    user = getattr(django_settings, "WSMANAGER", None) or {}
    merged = dict(DEFAULTS)
    if isinstance(user, Mapping):
        merged.update(user)
    return merged


def validate(raw: Mapping[str, Any] | None = None) -> list[str]:
    """Problems with the settings, as readable sentences (empty when all is well)."""
    user = getattr(django_settings, "WSMANAGER", None) if raw is None else raw
    if user is None:
        return []
    if not isinstance(user, Mapping):
        return [f"WSMANAGER must be a dict, not {type(user).__name__}."]
    problems = [
        f"WSMANAGER has an unknown key {key!r}; known keys: {', '.join(sorted(DEFAULTS))}."
        for key in user
        if key not in DEFAULTS
    ]
    registry = user.get("REGISTRY", DEFAULTS["REGISTRY"])
    if not isinstance(registry, Mapping) or not isinstance(registry.get("BACKEND"), str):
        problems.append('WSMANAGER["REGISTRY"] must be a dict with a dotted-path "BACKEND".')
    elif not isinstance(registry.get("OPTIONS", {}), Mapping):
        problems.append('WSMANAGER["REGISTRY"]["OPTIONS"] must be a dict.')
    layer = user.get("CHANNEL_LAYER", DEFAULTS["CHANNEL_LAYER"])
    if layer is not None and not isinstance(layer, str):
        problems.append('WSMANAGER["CHANNEL_LAYER"] must be a layer alias (str) or None.')
    for key in ("INVOKE_TIMEOUT", "HEARTBEAT_INTERVAL"):
        value = user.get(key, DEFAULTS[key])
        # ``not value > 0`` also refuses NaN.
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            problems.append(f'WSMANAGER["{key}"] must be a positive number of seconds.')
    queue = user.get("MAX_OUTGOING_QUEUE", DEFAULTS["MAX_OUTGOING_QUEUE"])
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
        problems.append('WSMANAGER["MAX_OUTGOING_QUEUE"] must be a positive integer.')
    origins = user.get("ALLOWED_ORIGINS")
    if origins is not None and (
        isinstance(origins, str)
        or not isinstance(origins, Iterable)
        or not all(isinstance(o, str) for o in origins)
    ):
        problems.append('WSMANAGER["ALLOWED_ORIGINS"] must be a list of origin patterns or None.')
    drain = user.get("DRAIN_PERIOD", DEFAULTS["DRAIN_PERIOD"])
    # ``not 0 <= drain < inf`` also refuses NaN.
    if isinstance(drain, bool) or not isinstance(drain, int | float) or not 0 <= drain < float("inf"):
        problems.append('WSMANAGER["DRAIN_PERIOD"] must be a number of seconds, 0 or more.')
    window = user.get("RECOVERY_WINDOW")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int | float) or not 0 <= window < float("inf")
    ):
        problems.append('WSMANAGER["RECOVERY_WINDOW"] must be a number of seconds, 0 or more, or None.')
    length = user.get("RECOVERY_JOURNAL_LENGTH", DEFAULTS["RECOVERY_JOURNAL_LENGTH"])
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        problems.append('WSMANAGER["RECOVERY_JOURNAL_LENGTH"] must be a positive integer.')
    size = user.get("TOPIC_HISTORY_SIZE", DEFAULTS["TOPIC_HISTORY_SIZE"])
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        problems.append('WSMANAGER["TOPIC_HISTORY_SIZE"] must be an integer, 0 or more.')
    ttl = user.get("TOPIC_HISTORY_TTL", DEFAULTS["TOPIC_HISTORY_TTL"])
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < float("inf")
    ):
        problems.append('WSMANAGER["TOPIC_HISTORY_TTL"] must be a positive number of seconds or None.')
    if not isinstance(user.get("REQUIRE_ORIGIN", False), bool):
        problems.append('WSMANAGER["REQUIRE_ORIGIN"] must be True or False.')
    problems.extend(_proxy_problems(user.get("TRUSTED_PROXIES", [])))
    return problems


def _proxy_problems(proxies: Any) -> list[str]:
    wrong = 'WSMANAGER["TRUSTED_PROXIES"] must be a list of IP addresses or networks'
    if isinstance(proxies, str) or not isinstance(proxies, Iterable):
        return [f"{wrong}."]
    bad = []
    for spec in proxies:
        try:
            ipaddress.ip_network(str(spec).strip(), strict=False)
        except ValueError:
            bad.append(repr(spec))
    return [f"{wrong}; these are not: {', '.join(bad)}."] if bad else []


_cached: Settings | None = None


def _forget(*, setting: str, **kwargs: Any) -> None:
    global _cached
    if setting == "WSMANAGER":
        _cached = None


setting_changed.connect(_forget, dispatch_uid="wsmanager._conf.forget")


def get_settings() -> Settings:
    """The effective settings (user values over :data:`DEFAULTS`).

    Built once and cached; ``override_settings(WSMANAGER=...)`` (Django's
    ``setting_changed`` signal) drops the cache.
    """
    global _cached
    if _cached is None:
        _cached = _build()
    return _cached


def _build() -> Settings:
    raw = _raw()
    registry = dict(DEFAULTS["REGISTRY"])
    registry.update(raw["REGISTRY"])
    return Settings(
        registry_backend=registry["BACKEND"],
        registry_options=dict(registry.get("OPTIONS") or {}),
        channel_layer=raw["CHANNEL_LAYER"],
        invoke_timeout=float(raw["INVOKE_TIMEOUT"]),
        heartbeat_interval=float(raw["HEARTBEAT_INTERVAL"]),
        max_outgoing_queue=int(raw["MAX_OUTGOING_QUEUE"]),
        allowed_origins=None if raw["ALLOWED_ORIGINS"] is None else tuple(raw["ALLOWED_ORIGINS"]),
        require_origin=bool(raw["REQUIRE_ORIGIN"]),
        trusted_proxies=tuple(raw["TRUSTED_PROXIES"] or ()),
        drain_period=float(raw["DRAIN_PERIOD"]),
        recovery_window=None if raw["RECOVERY_WINDOW"] is None else float(raw["RECOVERY_WINDOW"]),
        recovery_journal_length=int(raw["RECOVERY_JOURNAL_LENGTH"]),
        topic_history_size=int(raw["TOPIC_HISTORY_SIZE"]),
        topic_history_ttl=None if raw["TOPIC_HISTORY_TTL"] is None else float(raw["TOPIC_HISTORY_TTL"]),
    )


def _forget_settings() -> None:
    global _cached
    _cached = None


_state.owns(__name__, _forget_settings)
