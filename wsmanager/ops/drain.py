"""Graceful shutdown: close every socket of this process with a code and a reason,
spread over a drain period, before the server drops them.

Left to themselves, servers end their WebSockets on SIGTERM in their own
way: daphne and hypercorn cancel the application and drop the TCP
connection (the client sees 1006, no close frame); uvicorn sends 1012 with
no reason; granian sends 1001 only once the worker stops. Every client then
reconnects at the same moment. :func:`install` puts wsmanager first:

1. On SIGTERM, :func:`drain` closes this process's sockets
   (``get_node().sockets``) with 1012 "server restarting" in batches spread
   over ``WSMANAGER["DRAIN_PERIOD"]`` seconds (default 5; 0 closes them all
   at once). Closing a socket removes its registry entry, its groups and its
   presence at once, on every process sharing the registry; sockets that
   connect meanwhile are closed with the last batch.
2. Then the server's own SIGTERM handler runs (it was kept when the hook
   was installed), and the server shuts down as it always does, with no
   socket left to drop. A handler set with ``signal.signal`` (uvicorn,
   daphne's Twisted) is called; one an asyncio loop holds is run from its
   handle; one uvloop holds out of reach (granian's worker) is reached by
   sending this process SIGINT, which those servers handle as SIGTERM.

A second SIGTERM during the drain skips what remains of it and hands over
to the server at once.

Where the hook is installed:

* uvicorn, granian: at ASGI lifespan start-up (:mod:`wsmanager.ops.lifespan`),
  after the server installed its own handler.
* hypercorn: its workers get no SIGTERM (the main process tells them
  through a multiprocessing event); at lifespan start-up, a task watches
  that event (:func:`wsmanager.servers.hypercorn_worker_shutdown`) and
  drains within half of hypercorn's ``--graceful-timeout`` (3 s by default),
  before hypercorn cancels the connections.
* daphne (no lifespan): ``install()`` called from the ASGI module asks the
  Twisted reactor to call back once it runs (:func:`wsmanager.servers.call_when_running`).

Guarantees: the server's handler runs exactly once per SIGTERM that reached
the hook, after the drain (or at once on the second one), even if closing a
socket fails. Non-guarantees: a client that never reads its close frame
keeps its TCP connection until the server drops it; under hypercorn the
drain period is cut to half the graceful timeout, and the server stops
listening at once (not after the drain); a server whose workers get neither
SIGTERM nor a known event is drained only at lifespan shutdown, by then at
once (``period=0``) and only if the server has not dropped its connections
yet.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from .. import _state, servers
from .._conf import get_settings
from ..node import _hub as node
from ..node._hub import get_node
from . import _health as health

__all__ = ["CLOSE_WAIT", "RESTART", "drain", "draining", "install"]

logger = logging.getLogger(__name__)

#: RFC 6455 section 7.4.1 (IANA registry): "service restart", the client may reconnect.
RESTART = 1012
#: Batches per second of drain period.
_BATCHES_PER_SECOND = 10
#: Seconds the drain waits, after its last batch, for closes still under way.
CLOSE_WAIT = 5.0

#: Seconds between two looks at hypercorn's shutdown event (it looks every 0.1 s).
_POLL = 0.05

#: Waits between batches (a seam for the tests' clock).
_sleep = asyncio.sleep

_hooked_loop: asyncio.AbstractEventLoop | None = None
_drain_task: asyncio.Task[None] | None = None
_tasks: set[asyncio.Task[None]] = set()


def draining() -> bool:
    """Whether a SIGTERM drain is under way in this process."""
    return _drain_task is not None and not _drain_task.done()


async def drain(period: float | None = None, code: int = RESTART, reason: str = "server restarting") -> int:
    """Close every socket of this process, spread over ``period`` seconds; how many closes completed.

    ``period`` None: ``WSMANAGER["DRAIN_PERIOD"]``. The closes start in up
    to 10 batches per second; sockets that opened during the drain are
    closed with the last batch. A close waits for the server to send it
    (on uvicorn's ``websockets`` implementation: for the client's answer), so
    the drain does not wait for one batch before starting the next, and
    waits at most :data:`CLOSE_WAIT` seconds after the last batch for the
    closes still under way; those are left to the server's shutdown.
    """
    if period is None:
        period = get_settings().drain_period
    health.set_draining()  # readiness answers 503 from now on (wsmanager.ops.probes)
    loop = asyncio.get_running_loop()
    node = get_node()
    sockets = list(node.sockets.values())
    steps = max(1, min(len(sockets), int(period * _BATCHES_PER_SECOND)))
    started = loop.time()
    if sockets:
        logger.info("draining %d socket(s) over %.1f s with %d", len(sockets), period, code)
    closing: list[asyncio.Task[int]] = []
    for step in range(steps):
        batch = sockets[step * len(sockets) // steps : (step + 1) * len(sockets) // steps]
        closing += [loop.create_task(_close(sock, code, reason)) for sock in batch]
        if step < steps - 1:
            await _sleep(max(0.0, started + (step + 1) * period / steps - loop.time()))
    closing += [loop.create_task(_close(s, code, reason)) for s in node.sockets.values() if s not in sockets]
    if not closing:
        return 0
    done, pending = await asyncio.wait(closing, timeout=CLOSE_WAIT)
    if pending:
        logger.warning("drain: %d close(s) unanswered after %.0f s", len(pending), CLOSE_WAIT)
    return sum(task.result() for task in done)


async def _close(sock: Any, code: int, reason: str) -> int:
    try:
        await sock.close(code, reason)
    except Exception:
        logger.exception("drain: closing socket %s failed", getattr(sock, "id", "?"))
        return 0
    return 1


def install() -> bool:
    """Make SIGTERM drain this process before the server's own handler runs; True if hooked.

    Call it from the running loop once the server has installed its
    handlers (ASGI lifespan start-up does), or at import of the ASGI module
    under daphne (the hook is then installed once the reactor runs).
    Idempotent per event loop. Outside the main thread signals cannot be
    hooked: logged, False.
    """
    node.on_drain_request(_drain_requested)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return servers.call_when_running(_install_in_running_loop)
    return _hook(loop)


def _drain_requested(period: float | None) -> None:
    """Another process asked (``manage.py wsmanager drain``): drain, once at a time.

    The process keeps running; it is marked draining, so its readiness
    probe answers 503 and a load balancer stops sending it new clients.
    """
    global _drain_task
    if draining():
        return
    logger.info("drain requested by another process")
    _drain_task = asyncio.get_running_loop().create_task(_drain_quietly(period))


async def _drain_quietly(period: float | None) -> None:
    await drain(period)


def _install_in_running_loop() -> None:
    _hook(asyncio.get_event_loop())


def _hook(loop: asyncio.AbstractEventLoop) -> bool:
    global _hooked_loop
    if _hooked_loop is loop:
        return True
    if threading.current_thread() is not threading.main_thread():
        logger.info("drain: not in the main thread (a reloader?); SIGTERM is not hooked")
        return False
    # A server that handles SIGTERM through its asyncio loop (hypercorn without
    # workers) has its handle there; signal.getsignal() only shows asyncio's
    # no-op, and the loop would still run the server's handler first.
    handles = getattr(loop, "_signal_handlers", None)
    handle = handles.get(signal.SIGTERM) if isinstance(handles, dict) else None
    previous = signal.getsignal(signal.SIGTERM)
    if handle is not None:
        chain: Callable[[], None] = handle._run
        loop.add_signal_handler(signal.SIGTERM, _on_sigterm, loop, chain)
    elif getattr(previous, "__self__", None) is loop:
        # uvloop (granian's loop) keeps the server's callback out of reach and runs it
        # from its own wake-up fd whatever signal.signal says: take SIGTERM over in
        # the loop, and hand over with SIGINT, which the servers that do this
        # (granian registers one handler for both) treat alike.
        loop.add_signal_handler(signal.SIGTERM, _on_sigterm, loop, _hand_over_as_sigint)
    else:
        chain = functools.partial(_call_previous, previous)

        def on_signal(signum: int, frame: Any) -> None:
            loop.call_soon_threadsafe(_on_sigterm, loop, chain)

        signal.signal(signal.SIGTERM, on_signal)
    _hooked_loop = loop
    logger.debug("drain: SIGTERM hooked (pid %s)", os.getpid())
    worker = servers.hypercorn_worker_shutdown()
    if worker is not None:
        _tasks.add(loop.create_task(_watch_worker_shutdown(*worker)))
    return True


async def _watch_worker_shutdown(is_set: Callable[[], bool], grace: float) -> None:
    """A hypercorn worker: drain as soon as the main process says stop, within its grace.

    hypercorn cancels the connections ``grace`` seconds after it saw the
    event; the drain takes at most half of that.
    """
    global _drain_task
    while not is_set():  # noqa: ASYNC110 (a multiprocessing event: nothing to await)
        await asyncio.sleep(_POLL)
    period = min(get_settings().drain_period, grace / 2)
    logger.info("drain: the hypercorn worker is stopping; draining within %.1f s", period)
    _drain_task = asyncio.get_running_loop().create_task(_drain_then(lambda: None, period))


def _hand_over_as_sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _call_previous(previous: Any) -> None:
    """Run the SIGTERM handler that was there before the hook, as the signal would have."""
    if callable(previous):
        previous(signal.SIGTERM, None)
    elif previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    # SIG_IGN (or unknown, e.g. set from C): the signal was ignored before; so it is now.


def _on_sigterm(loop: asyncio.AbstractEventLoop, chain: Callable[[], None]) -> None:
    global _drain_task
    if draining():
        assert _drain_task is not None
        logger.info("drain: second SIGTERM; handing over to the server now")
        _drain_task.cancel()
        return
    _drain_task = loop.create_task(_drain_then(chain))


async def _drain_then(chain: Callable[[], None], period: float | None = None) -> None:
    try:
        await drain(period)
    except asyncio.CancelledError:
        pass
    except Exception:
        logger.exception("drain failed; handing over to the server")
    finally:
        chain()


def reset() -> None:
    """Forget the hooked loop and the drain under way (tests; :func:`wsmanager.testing.reset`)."""
    global _hooked_loop, _drain_task
    _hooked_loop = None
    _drain_task = None


_state.owns(__name__, reset)
