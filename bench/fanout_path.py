"""CPU per delivery of a room broadcast, without a server: ``python -m bench.fanout_path``.

Opens ``N`` sockets on this process's node (in-memory registry and channel
layer), each with a real :class:`~wsmanager.connection._writer.Writer` whose server write
is synchronous and free (the frame is framed once per broadcast and handed
to a transport that drops it, as uvicorn's direct write does), all in one
group; then ``manager.anotify_group`` to that group, repeatedly. Prints the
CPU time (``time.process_time``) per delivery, median and minimum of 7 runs,
for 300 and 1,000 sockets. Then, for the same 300 sockets, two pieces beside
it: uvicorn's default (``websockets-sansio``) adapter write on a protocol
in the OPEN state, and ``websockets.broadcast`` (what the raw ceiling of
``python -m bench`` runs) per connection, both on a transport that drops
what it is given. It isolates wsmanager's own cost between "a
notification for a group" and "a frame handed to each transport" from the
server and the network (the ``send`` system call, which dominates and blurs
``python -m bench`` on a shared machine).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")  # no metrics, as the bench apps
django.setup()

from websockets.asyncio.server import ServerConnection, broadcast  # noqa: E402
from websockets.protocol import State  # noqa: E402
from websockets.server import ServerProtocol  # noqa: E402

from wsmanager._manager import get_manager  # noqa: E402
from wsmanager.connection._outbox import Message, Outbox  # noqa: E402
from wsmanager.connection._writer import Writer  # noqa: E402
from wsmanager.node import get_node, reset_node  # noqa: E402
from wsmanager.registry import ConnectionInfo, get_registry, reset_registry  # noqa: E402
from wsmanager.servers import UvicornSansioAdapter  # noqa: E402

HANDLER = "bench.fanout_path"
GROUP = "room"


@dataclass
class Sock:
    """The part of a handler the node delivers to."""

    id: str
    info: ConnectionInfo
    writer: Writer
    settled: bool = True

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        raise NotImplementedError

    async def invoke_params(self, method: str, params: Any, /, *, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def taken_over(self, key: str) -> bool:
        return False


async def per_delivery_us(sockets: int, rounds: int) -> float:
    reset_registry()
    reset_node()
    node = get_node()
    await node.start()
    registry = get_registry()
    written = 0
    last: Message | None = None
    frame = b""

    def direct(message: Message) -> bool:  # uvicorn's: framed once, then transport.write
        nonlocal written, last, frame
        if message is not last:
            last, frame = message, message["text"].encode()
        written += len(frame) > 0
        return True

    async def close(code: int, reason: str) -> None:
        raise AssertionError("no socket closes here")

    for i in range(sockets):
        info = ConnectionInfo(id=f"s{i}", handler=HANDLER, node=node.id)
        await registry.add(info)
        info = await registry.group_add(HANDLER, GROUP, info.id) or info
        writer = Writer(Outbox(256 * 1024, 1000, held=False), close, handler=HANDLER)
        writer.direct = direct
        node.attach(Sock(info.id, info, writer))
    manager = get_manager(HANDLER)
    start = time.process_time()
    for n in range(rounds):
        assert await manager.anotify_group(GROUP, "msg", f"round {n}") == sockets
    took = time.process_time() - start
    assert written == sockets * rounds, written
    await node.stop()
    return took / (sockets * rounds) * 1e6


class DropTransport:
    """A transport that takes every write and holds nothing."""

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        pass

    def writelines(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False


class SansioLike:
    """The attributes of uvicorn's WebSocketsSansIOProtocol that its adapter reads."""

    def __init__(self) -> None:
        self.transport = DropTransport()
        self.writable = asyncio.Event()
        self.writable.set()
        self.handshake_complete, self.close_sent, self.disconnected = True, False, False
        self.initial_response = None
        self.conn = ServerProtocol()
        self.conn.state = State.OPEN

    async def send(self, message: Message) -> None:
        raise AssertionError("the adapter writes without the ASGI send")


async def adapter_write_us(sockets: int, rounds: int) -> float:
    writers = [UvicornSansioAdapter().direct_writer(SansioLike().send) for _ in range(sockets)]
    messages = [{"type": "websocket.send", "text": f"round {n}".ljust(110, "x")} for n in range(rounds)]
    start = time.process_time()
    for message in messages:
        for write in writers:
            assert write is not None and write(message)
    return (time.process_time() - start) / (sockets * rounds) * 1e6


async def broadcast_us(sockets: int, rounds: int) -> float:
    connections = []
    for _ in range(sockets):
        protocol = ServerProtocol()
        protocol.state = State.OPEN
        connection = ServerConnection(protocol, server=None)  # type: ignore[arg-type]
        connection.transport = DropTransport()  # type: ignore[assignment]
        connections.append(connection)
    texts = [f"round {n}".ljust(110, "x") for n in range(rounds)]
    start = time.process_time()
    for text in texts:
        broadcast(connections, text)
    return (time.process_time() - start) / (sockets * rounds) * 1e6


def main() -> None:
    for sockets, rounds in ((300, 300), (1000, 100)):
        samples = [asyncio.run(per_delivery_us(sockets, rounds)) for _ in range(7)]
        median, low = statistics.median(samples), min(samples)
        print(f"{sockets} sockets: {median:.3f} us/delivery median, {low:.3f} min")
    pieces = (("uvicorn default adapter write", adapter_write_us), ("websockets.broadcast", broadcast_us))
    for label, run in pieces:
        samples = [asyncio.run(run(300, 300)) for _ in range(7)]
        median, low = statistics.median(samples), min(samples)
        print(f"{label}, 300 sockets: {median:.3f} us per socket median, {low:.3f} min")


if __name__ == "__main__":
    main()
