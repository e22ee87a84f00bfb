"""``wsmanager.connection._writer``: one writer per socket, senders never wait for a slow transport,
and a refused write or an over-full backlog closes the socket (counted)."""

from __future__ import annotations

import asyncio
from typing import Any

from wsmanager.connection._outbox import Message, Outbox, frame
from wsmanager.connection._writer import Writer
from wsmanager.observe import _counters as counters


class Transport:
    """An ASGI ``send`` whose writes can be made to wait (a full TCP buffer)."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.gate: asyncio.Event | None = None
        self.concurrent = 0
        self.most_concurrent = 0
        self.fail_on: str | None = None
        self.closed_on: str | None = None

    async def send(self, message: Message) -> None:
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            if self.fail_on is not None and message.get("text") == self.fail_on:
                raise ValueError("frame too big for this server")
            if self.closed_on is not None and message.get("text") == self.closed_on:
                raise OSError("the client's close frame arrived")  # as ASGI and uvicorn say it
            if self.gate is not None:
                await self.gate.wait()
            self.written.append(message["text"])
        finally:
            self.concurrent -= 1


def make(max_bytes: int | None = None, max_frames: int = 100) -> tuple[Writer, Transport, list[Any]]:
    closes: list[Any] = []

    async def close(code: int, reason: str) -> None:
        closes.append((code, reason))

    writer = Writer(Outbox(max_bytes, max_frames), close, "s1")
    transport = Transport()
    writer.send = transport.send
    return writer, transport, closes


async def test_frames_are_written_in_order_at_once_when_the_transport_takes_them() -> None:
    writer, transport, _ = make()

    async def opening() -> None:
        pass

    await writer.start(opening)
    assert all(writer.push(frame(str(i))) for i in range(5))
    assert transport.written == ["0", "1", "2", "3", "4"]  # no task, no loop turn needed


async def test_a_sender_never_waits_for_a_stalled_transport_and_there_is_one_writer() -> None:
    writer, transport, closes = make()
    transport.gate = asyncio.Event()

    async def opening() -> None:
        pass

    await writer.start(opening)
    assert all(writer.push(frame(str(i))) for i in range(20))  # returns although nothing was written
    assert transport.written == [] and len(writer.outbox) == 19
    transport.gate.set()
    for _ in range(50):
        await asyncio.sleep(0)
    assert transport.written == [str(i) for i in range(20)]
    assert transport.most_concurrent == 1 and closes == []


async def test_over_the_backlog_the_socket_is_closed_1013_once_and_frames_are_counted() -> None:
    writer, transport, closes = make(max_bytes=10)
    transport.gate = asyncio.Event()

    async def opening() -> None:
        pass

    await writer.start(opening)
    writer.push(frame("first"))  # taken by the writer, stuck in the transport
    assert writer.push(frame("123456")) is True
    assert writer.push(frame("12345")) is False
    assert writer.push(frame("12345")) is False
    await asyncio.sleep(0)
    assert closes == [(1013, "too slow")]
    assert counters.stats()["dropped_slow_client"] == 2


async def test_a_write_the_server_refuses_closes_1011_and_drops_what_waits() -> None:
    writer, transport, closes = make()
    transport.fail_on = "huge"

    async def opening() -> None:
        writer.push(frame("hello"))
        writer.push(frame("huge"))
        writer.push(frame("after"))

    await writer.start(opening)
    await asyncio.sleep(0)
    assert transport.written == ["hello"]
    assert closes == [(1011, "write failed")]
    stats = counters.stats()
    assert (stats["dropped_write_failed"], stats["dropped_closed"]) == (1, 1)
    assert writer.push(frame("later")) is False


async def test_a_write_after_the_connection_closed_closes_nothing_and_leaves_the_code_to_the_server() -> None:
    """The client's close frame came first (the application not yet told): no 1011, a
    park code, but the code of the server's disconnect; what waits is dropped, counted."""
    writer, transport, closes = make()
    transport.closed_on = "late"

    async def opening() -> None:
        writer.push(frame("hello"))
        writer.push(frame("late"))
        writer.push(frame("after"))

    await writer.start(opening)
    await asyncio.sleep(0)
    assert transport.written == ["hello"]
    assert closes == []
    stats = counters.stats()
    assert stats["dropped_closed"] == 2 and "dropped_write_failed" not in stats
    assert writer.push(frame("later")) is False


async def test_flush_cancels_a_writer_stuck_on_the_transport() -> None:
    writer, transport, _ = make()
    transport.gate = asyncio.Event()

    async def opening() -> None:
        pass

    await writer.start(opening)
    writer.push(frame("stuck"))
    writer.push(frame("waiting"))
    await writer.flush()
    writer.stop()
    for _ in range(3):
        await asyncio.sleep(0)
    assert transport.written == [] and transport.concurrent == 0
    assert counters.stats()["dropped_closed"] == 1


async def test_a_synchronous_write_takes_frames_of_an_idle_outbox_and_the_awaited_send_the_rest() -> None:
    """servers.direct_writer: used only when nothing waits; a refusal hands the frame to
    the awaited send, and later frames queue behind it there (order kept)."""
    writer, transport, _ = make()
    direct: list[str] = []
    accepting = True

    def write_now(message: Message) -> bool:
        if accepting:
            direct.append(message["text"])
        return accepting

    writer.direct = write_now

    async def opening() -> None:
        pass

    await writer.start(opening)
    assert writer.push(frame("a")) and writer.push(frame("b"))
    assert (direct, transport.written, writer.outbox.bytes, len(writer.outbox)) == (["a", "b"], [], 0, 0)

    accepting = False  # the transport is full: the awaited send takes over, and it waits
    transport.gate = asyncio.Event()
    assert writer.push(frame("c"))
    accepting = True
    assert writer.push(frame("d"))  # queued behind "c", not written at once
    assert direct == ["a", "b"]
    transport.gate.set()
    await writer.flush()  # waits for the awaited send to finish, however many turns it takes
    assert transport.written == ["c", "d"]
    assert writer.push(frame("e")) and direct == ["a", "b", "e"]  # idle again


async def test_a_synchronous_write_that_raises_falls_back_to_the_awaited_send() -> None:
    writer, transport, closes = make()

    def broken(message: Message) -> bool:
        raise RuntimeError("transport gone")

    writer.direct = broken

    async def opening() -> None:
        pass

    await writer.start(opening)
    assert writer.push(frame("x"))
    assert transport.written == ["x"] and closes == []
