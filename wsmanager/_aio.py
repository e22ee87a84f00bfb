"""Small asyncio helpers the core shares: a cancellation check that survives
a lost ``CancelledError``, and a way to start a coroutine without a task
when it finishes without waiting.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import async_to_sync

__all__ = ["cancel_requested", "run_eagerly", "sync_twin"]

P = ParamSpec("P")
R = TypeVar("R")


def cancel_requested() -> bool:
    """Whether the running task was cancelled, even if its ``CancelledError`` got lost.

    Python 3.11's ``asyncio.wait_for``, which redis-py wraps around every
    write, returns normally and drops a cancellation that arrives in the
    loop iteration where its inner call completes (CPython gh-86296, fixed
    in 3.12). A background loop that stopped only on the exception would
    then run forever; the task's pending cancel count survives the loss.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def run_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` now, in the caller's turn of the loop, up to its first real wait.

    Returns None when it finished without waiting (no task was made: the
    common case of a write the server buffers at once). Otherwise the rest
    of it runs in a new task, which is returned. An exception raised before
    the first wait propagates to the caller, as a direct call would.

    This is Python 3.12's eager task start, for 3.11: the same coroutine
    code either way, and no task per call on the fast path. Cancelling the
    task cancels the coroutine where it waits (or closes it, if the task had
    not run yet).
    """
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    task = asyncio.get_running_loop().create_task(_resume(coro, waiting))
    # A task cancelled before its first step never passes the cancellation
    # on: close the coroutine then, so that its ``finally`` blocks still run.
    task.add_done_callback(lambda done: coro.close() if done.cancelled() else None)
    return task


async def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Go on driving ``coro`` from inside a task: what it waits on, the task waits on.

    A native coroutine (a task takes nothing else from Python 3.12 on); each
    step hands the task what ``coro`` yielded, through :class:`_Pass`, and
    passes what the task sends or throws back into ``coro``.
    """
    while True:
        try:
            await _Pass(waiting)
        except BaseException as exc:  # cancellation (or a throw) goes into coro
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = coro.send(None)
            except StopIteration:
                return


class _Pass:
    """An awaitable that yields one value to the task (a future, or None for a
    bare yield) and returns when the task resumes it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, None]:
        yield self.value


def sync_twin(afunc: Callable[P, Awaitable[R]]) -> Callable[P, R]:
    """The sync version of a ``Manager`` coroutine method (``aget`` -> ``get``).

    ``functools.wraps`` gives it the coroutine's signature (as
    ``inspect.signature`` shows it) and annotations; only its name, and a
    first docstring line saying whose twin it is, differ. It runs the
    coroutine with ``async_to_sync``, so calling it from a running event
    loop's thread raises, as Django's do.
    """

    @functools.wraps(afunc)
    def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        return async_to_sync(afunc)(*args, **kwargs)

    twin.__name__ = afunc.__name__.removeprefix("a")
    twin.__qualname__ = f"Manager.{twin.__name__}"
    twin.__doc__ = f"Sync twin of :meth:`{afunc.__name__}`. {afunc.__doc__ or ''}"
    return twin
