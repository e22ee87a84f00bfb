"""The five scenarios. Each case opens its sockets on every system, then is run
once per system and repeat (interleaved by the runner), then closes them.

* :class:`Echo`: N sockets, each sends a 64-byte text frame and awaits its echo.
* :class:`Rpc`: the same with a JSON-RPC call (socket.io: an event with an ack).
* :class:`Fanout`: L listeners in a room, one sender, rounds of one message;
  a round ends when every listener has it.
* :class:`Direct`: ``POST /send/<id>`` to a Django view that sends the body to
  one socket; timed until the socket has it.
* :class:`Connections`: open many sockets to a fresh server; connects/s and
  the server's RSS per idle socket.

Every wait is bounded (``asyncio.timeout``) and every loop stops on a
deadline or a count.
"""

from .base import FULL, QUICK, BenchError, Case, Config, open_many
from .connections import Connections
from .direct import Direct
from .fanout import Fanout
from .roundtrip import Echo, Rpc

__all__ = [
    "FULL",
    "QUICK",
    "BenchError",
    "Case",
    "Config",
    "Connections",
    "Direct",
    "Echo",
    "Fanout",
    "Rpc",
    "open_many",
]
