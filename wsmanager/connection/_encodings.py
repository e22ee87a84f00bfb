"""A socket's encoding: JSON text or MessagePack binary, chosen by subprotocol at the handshake.

The rules of both encodings are :mod:`wsmanager_client.encodings` (shared with
the client); this module is what one socket of the server does with them
(docs/protocol.md, section 15):

* :func:`negotiate` picks the encoding from the subprotocols the client offers,
  in the client's order of preference, among those the handler accepts
  (``RpcHandler.encodings``). A client that offers none of ours gets JSON and
  no subprotocol, as every client did before; one that offers only encodings
  the handler does not accept gets JSON and no subprotocol too (the client sees
  that none was chosen).
* :class:`Codec` encodes the socket's own answers and calls (so ``bytes`` in a
  result travel as ``bin``) and decodes its frames. Frames of the wrong type
  (binary on JSON, text on MessagePack) are answered -32001.
* :func:`to_binary` is a MessagePack socket's writer's translation: every other
  frame is JSON text made once for all its targets (a broadcast, a topic
  publication, ``rpc.connected``, a replay), and becomes MessagePack on the
  way into the socket's outbox. The last translation is remembered, so a
  broadcast to many MessagePack sockets is packed once.

Non-guarantee: what is encoded once for many sockets (``Manager`` sends,
topics, recovery's journal) is JSON first, so it carries JSON values only
(no ``bytes``), whatever the sockets' encodings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wsmanager_client import encodings, protocol
from wsmanager_client.encodings import JSON, MSGPACK, SUBPROTOCOLS
from wsmanager_client.protocol import Decoded, ErrorObject, Invalid, JsonId

from ._outbox import Message

__all__ = ["Codec", "codec_for", "negotiate", "to_binary"]


def negotiate(offered: Sequence[str], accepted: Sequence[str]) -> tuple[str, str | None]:
    """The encoding and the subprotocol to accept (None: none) for a client that
    offered ``offered`` to a handler that accepts ``accepted``."""
    for name in offered:
        encoding = encodings.encoding_of(name)
        if SUBPROTOCOLS[encoding] == name and encoding in accepted:
            return encoding, name
    return JSON, None


class Codec:
    """A socket's encoder and decoder (``name``: ``"json"`` or ``"msgpack"``).

    Holds no state of the socket: every socket of one encoding shares one
    (:func:`codec_for`), so that a socket costs no codec of its own."""

    __slots__ = ("binary", "name")

    def __init__(self, name: str = JSON) -> None:
        self.name = name
        self.binary = name == MSGPACK

    def result(self, msg_id: JsonId, result: Any) -> str | bytes:
        """A result response; raises :class:`~wsmanager_client.protocol.EncodeError`."""
        if self.binary:
            return encodings.pack(protocol.result_response(msg_id, result))
        return protocol.encode_result(msg_id, result)

    def notification(self, method: str, params: dict[str, Any]) -> str | bytes:
        """A notification to this socket alone (a stream's item: ``bytes`` travel as ``bin``
        on MessagePack); raises :class:`~wsmanager_client.protocol.EncodeError`."""
        if self.binary:
            return encodings.pack({"jsonrpc": protocol.VERSION, "method": method, "params": params})
        return protocol.encode_notification(method, params)

    def request(self, method: str, params: tuple[Any, ...] | dict[str, Any], msg_id: JsonId) -> str | bytes:
        """A call to the client; raises :class:`~wsmanager_client.protocol.EncodeError`."""
        if self.binary:
            message: dict[str, Any] = {"jsonrpc": protocol.VERSION, "method": method}
            message["params"] = dict(params) if isinstance(params, dict) else list(params)
            message["id"] = msg_id
            return encodings.pack(message)
        return protocol.encode_request(method, params, msg_id)

    def join(self, answers: Sequence[str | bytes]) -> str | bytes:
        """A batch's answers as one frame (each answer as this codec or JSON text)."""
        if self.binary:
            return encodings.join_batch(
                [a if isinstance(a, bytes) else encodings.transcode(a) for a in answers]
            )
        return f"[{','.join(a if isinstance(a, str) else a.decode() for a in answers)}]"

    def decode(self, message: str | bytes, max_batch: int) -> Decoded:
        """A frame's items; the wrong frame type gives one -32001 item."""
        if self.binary:
            if isinstance(message, str):
                return Decoded([Invalid(encodings.TEXT_NOT_SUPPORTED)])
            return encodings.unpack(message, max_batch=max_batch)
        if isinstance(message, bytes):
            return Decoded([Invalid(ErrorObject.standard(protocol.BINARY_NOT_SUPPORTED))])
        return protocol.decode(message, max_batch=max_batch)


_last: tuple[Message | None, Message | None] = (None, None)


def to_binary(message: Message) -> Message:
    """A text frame as MessagePack (other messages unchanged); the last one is remembered,
    and so is a failure (an int beyond 64 bits): a broadcast that has no MessagePack form
    raises :class:`~wsmanager_client.protocol.EncodeError` for each MessagePack socket but is
    packed once. Lone surrogates become ``?`` (:func:`~wsmanager_client.encodings.pack`)."""
    global _last
    text = message.get("text")
    if text is None:
        return message
    seen, translated = _last
    if seen is message:
        if translated is None:  # failed for the socket before: fails alike, without packing again
            raise protocol.EncodeError("the frame has no MessagePack form")
        return translated
    _last = (message, None)
    translated = {"type": message.get("type", "websocket.send"), "bytes": encodings.transcode(text)}
    _last = (message, translated)
    return translated


_SHARED = {name: Codec(name) for name in (JSON, MSGPACK)}


def codec_for(name: str) -> Codec:
    """The shared :class:`Codec` of encoding ``name`` (``"json"`` or ``"msgpack"``)."""
    return _SHARED[name]
