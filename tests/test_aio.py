"""``wsmanager._aio``: eager starts and the lost-cancellation check."""

from __future__ import annotations

import asyncio

import pytest

from wsmanager._aio import run_eagerly


async def test_a_coroutine_that_never_waits_runs_to_the_end_without_a_task() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("ran")

    assert run_eagerly(quick()) is None
    assert done == ["ran"]


async def test_a_coroutine_that_waits_goes_on_in_a_task_after_its_first_step() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def slow() -> None:
        steps.append("before")
        steps.append(await gate)

    task = run_eagerly(slow())
    assert steps == ["before"] and task is not None and not task.done()
    gate.set_result("after")
    await task
    assert steps == ["before", "after"]


async def test_an_error_before_the_first_wait_reaches_the_caller() -> None:
    async def broken() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        run_eagerly(broken())


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def waits() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = run_eagerly(waits())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_an_error_after_a_wait_fails_the_task() -> None:
    async def later() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("later")

    task = run_eagerly(later())
    assert task is not None
    with pytest.raises(RuntimeError, match="later"):
        await task


async def test_cancelling_the_task_before_it_ran_still_ends_the_coroutine() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def waits() -> None:
        try:
            await gate
        finally:
            seen.append("ended")

    task = run_eagerly(waits())
    assert task is not None
    task.cancel()  # before the task's first step
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["ended"]
