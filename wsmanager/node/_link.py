"""A node's link to the channel layer: send an envelope to another node's
channel, and read its own channel for ever.

Sending never raises: a refused envelope (the target's channel is full, the
layer's store is down, no layer is configured, or, on a layer that can tell,
no process reads the channel) is logged (one line per kind and minute at
most), counted (``dropped_channel_full``, ``dropped_layer_error``,
``dropped_no_layer``, ``dropped_no_receiver``) and reported as False, so
the caller decides what a failed hop means. A layer that can tell has
``async deliver(channel, message) -> int``, the number of receivers
(:class:`wsmanager.layers.RedisClusterChannelLayer`: pub/sub keeps nothing
for a channel nobody reads); it is used instead of ``send``.
Reading retries with backoff (0.1 s doubling to 5 s) while the layer is
down and treats an idle read's time-out as nothing, so the loop ends only
when its task is cancelled (even when a library lost the cancellation, see
:func:`wsmanager._aio.cancel_requested`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.exceptions import ChannelFull

from .._aio import cancel_requested
from ..observe._counters import Count, bump
from ..observe._logs import LogThrottle

__all__ = ["Link"]

logger = logging.getLogger(__name__)

Envelope = dict[str, Any]


def _is_timeout(exc: BaseException) -> bool:
    """A read timeout of any client library (builtin, or e.g. redis' own TimeoutError)."""
    return isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError"


class Link:
    """The channel layer ``layer`` (None: not configured) as one node uses it."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        #: The layer's ``deliver`` (receivers reached), where it has one.
        self._deliver: Callable[[str, Envelope], Awaitable[int]] | None = getattr(layer, "deliver", None)
        #: One warning per kind of refusal and interval (every refusal is counted).
        self._warnings = LogThrottle()

    async def send(self, node_id: str, envelope: Envelope) -> bool:
        """Hand ``envelope`` to ``node_id``'s channel; False (logged, counted) if refused."""
        if self.layer is None:
            bump(Count.DROPPED_NO_LAYER)
            return False
        try:
            if self._deliver is None:
                await self.layer.send(node_id, envelope)
            elif not await self._deliver(node_id, envelope):
                bump(Count.DROPPED_NO_RECEIVER)
                self._warnings.log(
                    logger, "nobody", logging.WARNING, "no process reads channel %s; message dropped", node_id
                )
                return False
        except ChannelFull:
            bump(Count.DROPPED_CHANNEL_FULL)
            self._warnings.log(
                logger, "full", logging.WARNING, "channel of node %s is full; message dropped", node_id
            )
            return False
        except Exception as exc:  # the layer's store is down
            bump(Count.DROPPED_LAYER_ERROR)
            self._warnings.log(
                logger, "error", logging.WARNING, "channel layer send to %s failed: %r", node_id, exc
            )
            return False
        return True

    async def read_forever(self, channel: str, handle: Callable[[Envelope], Awaitable[None]]) -> None:
        """Read ``channel`` and ``await handle(envelope)`` for each, until cancelled.

        An exception in ``handle`` is logged and the loop goes on.
        """
        delay = 0.1
        while not cancel_requested():
            try:
                message = await self.layer.receive(channel)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _is_timeout(exc):
                    # An idle blocking read timed out in the client library
                    # (redis-py 6+ and channels_redis both wait 5 s): read again.
                    continue
                logger.warning("node %s cannot read its channel (%r); retrying", channel, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                await handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                kind = message.get("type") if isinstance(message, dict) else type(message).__name__
                logger.exception("node %s failed to handle %r", channel, kind)
