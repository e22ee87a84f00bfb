"""Health and readiness views for Kubernetes probes and load balancers.

Mount them in your URLconf::

    from wsmanager.ops import probes

    urlpatterns = [
        path("healthz", probes.health),
        path("readyz", probes.readiness),        # or {"timeout": 0.5} as extra kwargs
    ]

* :func:`health` (liveness) answers 200 ``{"status": "ok"}`` whenever the
  process can run a view at all. It checks nothing else, on purpose: a
  Redis outage must not make Kubernetes restart every pod.
* :func:`readiness` answers 200 ``{"ready": true, "checks": {...}}`` when
  the process is not draining (:func:`wsmanager.ops._health.set_draining`), the
  registry answers a one-key read and the channel layer answers a ping,
  each within ``timeout`` seconds (1 s by default; the checks run at the
  same time). Otherwise it answers 503 ``{"ready": false, "reason": ...,
  "checks": {...}}``, with the first failing check as ``reason``.

Reasons name no address or exception text (they are logged at WARNING on
``wsmanager.ops.probes``). The channel-layer check pings every host of a
``channels_redis`` core layer, or every primary of the Redis Cluster layer
(a layer with a ``ping()`` coroutine); the in-memory layer is always ready;
another layer is reported ``"not checked"`` and does not make the process
unready.
No access control: both views reveal only what a probe needs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.http import HttpRequest, JsonResponse

from .._conf import get_settings
from ..exceptions import RegistryUnavailable
from ..registry import get_registry
from ._health import is_draining, set_draining

__all__ = ["health", "is_draining", "readiness", "readiness_checks", "set_draining"]

logger = logging.getLogger(__name__)

#: A handler name no handler has: the registry check reads one key of it.
PROBE_HANDLER = "wsmanager.probe"


async def health(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 while the process serves requests."""
    return JsonResponse({"status": "ok"})


async def _registry() -> None:
    await get_registry().get(PROBE_HANDLER, "probe")


async def _channel_layer() -> str:
    alias = get_settings().channel_layer
    layer: Any = get_channel_layer(alias) if alias else None
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return "ok"
    ping = getattr(layer, "ping", None)  # wsmanager.layers.RedisClusterChannelLayer
    if ping is not None:
        await ping()
        return "ok"
    connection = getattr(layer, "connection", None)
    if connection is None or not hasattr(layer, "ring_size"):
        return "not checked"
    for index in range(layer.ring_size):
        await connection(index).ping()
    return "ok"


async def _check(name: str, check: Any, timeout: float) -> str:
    try:
        result = await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        logger.warning("readiness: %s did not answer within %s s", name, timeout)
        return "timeout"
    except RegistryUnavailable as exc:
        logger.warning("readiness: %s unavailable: %s", name, exc)
        return "unavailable"
    except Exception as exc:
        logger.warning("readiness: %s failed: %r", name, exc)
        return "unavailable"
    return result if isinstance(result, str) else "ok"


async def readiness_checks(timeout: float = 1.0) -> tuple[str | None, dict[str, Any]]:
    """The first reason the process is not ready (None when ready) and every check's result."""
    registry, layer = await asyncio.gather(
        _check("registry", _registry, timeout), _check("channel layer", _channel_layer, timeout)
    )
    checks: dict[str, Any] = {"draining": is_draining(), "registry": registry, "channel_layer": layer}
    if checks["draining"]:
        return "draining", checks
    if registry != "ok":
        return f"registry {registry}", checks
    if layer not in ("ok", "not checked"):
        return f"channel layer {layer}", checks
    return None, checks


async def readiness(request: HttpRequest, timeout: float = 1.0) -> JsonResponse:
    """Readiness: 200 when ready, else 503 with the reason (see the module docstring)."""
    reason, checks = await readiness_checks(timeout)
    if reason is None:
        return JsonResponse({"ready": True, "checks": checks})
    return JsonResponse({"ready": False, "reason": reason, "checks": checks}, status=503)
