"""The demo chat's contract, against a real daphne process and real clients."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest
import websockets

from demo_chat.access import REFUSED
from tests.e2e.client import Peer, chat_url, http, room_ids
from tests.servers import (
    DaphneProcess,
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
)
from wsmanager_client import RemoteError, RpcError, connect

pytestmark = pytest.mark.e2e

#: Presence notices of the demo (gathered per 50 ms, so they may come late).
PRESENCE = ("joined", "left", "presence")


def fresh(room: str) -> str:
    """A room of its own for one case of a parametrised test: a late presence notice
    about the previous case's peer cannot reach this one."""
    return f"{room}-{secrets.token_hex(4)}"


url = chat_url


async def room_sockets(server: ServerProcess, room: str) -> list[str]:
    return sorted(await room_ids(server, room))


async def eventually_empty(server: ServerProcess, room: str) -> None:
    for _ in range(100):
        if await room_sockets(server, room) == []:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"room {room} still lists {await room_sockets(server, room)}")


async def test_first_message_is_rpc_connected_with_an_unguessable_id(
    demo_server: ServerProcess,
) -> None:
    """The server's first frame is rpc.connected carrying a 43-character URL-safe id."""
    async with websockets.connect(url(demo_server, "ids")) as ws:
        hello = json.loads(await ws.recv())
    assert hello == {
        "jsonrpc": "2.0",
        "method": "rpc.connected",
        "params": {"id": hello["params"]["id"]},
    }
    sid = hello["params"]["id"]
    assert len(sid) == 43
    assert set(sid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


async def test_send_reaches_everyone_in_the_room_and_nobody_outside(
    demo_server: ServerProcess,
) -> None:
    """send(text) notifies every member, sender included, and no other room."""
    a = await Peer.open(url(demo_server, "r1", "?name=ann"))
    b = await Peer.open(url(demo_server, "r1"))
    other = await Peer.open(url(demo_server, "r2"))
    assert await a.call("send", "hello") == {"delivered": 2}
    expected = {"from": a.id, "name": "ann", "room": "r1", "text": "hello"}
    assert (await a.notification("message"))["params"] == expected
    assert (await b.notification("message"))["params"] == expected
    await other.nothing()
    for peer in (a, b, other):
        await peer.close()


async def test_whisper_reaches_only_its_target(demo_server: ServerProcess) -> None:
    """whisper(to, text) gives only `to` a private message; unknown or foreign ids are errors."""
    a = await Peer.open(url(demo_server, "w1", "?name=ann"))
    b = await Peer.open(url(demo_server, "w1"))
    c = await Peer.open(url(demo_server, "w1"))
    elsewhere = await Peer.open(url(demo_server, "w2"))
    await b.notification("joined")
    await a.call("whisper", b.id, "psst")
    got = await b.notification("message")
    assert got["params"] == {
        "from": a.id,
        "name": "ann",
        "room": "w1",
        "text": "psst",
        "private": True,
    }
    # c may still hear of b's arrival: presence notices are gathered for 50 ms.
    await c.nothing(ignore=PRESENCE)
    a.inbox.clear()
    await a.nothing()
    unknown = await a.request("whisper", "no-such-socket", "psst")
    assert unknown["error"]["code"] == 4004
    foreign = await a.request("whisper", elsewhere.id, "psst")
    assert foreign["error"]["code"] == 4004
    await elsewhere.nothing(ignore=PRESENCE)
    for peer in (a, b, c, elsewhere):
        await peer.close()


async def test_names_who_joined_renamed_and_left(demo_server: ServerProcess) -> None:
    """who() lists the room with names; others hear joined, renamed and left."""
    a = await Peer.open(url(demo_server, "names", "?name=ann"))
    b = await Peer.open(url(demo_server, "names"))
    assert (await a.notification("joined"))["params"] == {"id": b.id, "name": None}
    assert await b.call("set_name", "  bob ") == "bob"
    assert (await a.notification("renamed"))["params"] == {"id": b.id, "name": "bob"}
    members = await a.call("who")
    assert sorted(members, key=lambda m: m["name"]) == [
        {"id": a.id, "name": "ann"},
        {"id": b.id, "name": "bob"},
    ]
    bad_name = await b.request("set_name", "")
    assert bad_name["error"]["code"] == 4001
    await b.close()
    assert (await a.notification("left"))["params"] == {"id": b.id}
    assert await a.call("who") == [{"id": a.id, "name": "ann"}]
    await a.close()


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001])
async def test_empty_or_overlong_text_is_refused(demo_server: ServerProcess, text: str) -> None:
    """send and whisper refuse empty and over-2,000-character text with an error."""
    a = await Peer.open(url(demo_server, fresh("texts")))
    reply = await a.request("send", text)
    assert reply["error"]["code"] == 4000
    reply = await a.request("whisper", a.id, text)
    assert reply["error"]["code"] == 4000
    assert await a.call("send", "x" * 2000) == {"delivered": 1}
    await a.close()


@pytest.mark.parametrize(
    ("frame", "code", "answer_id"),
    [
        ("not json", -32700, None),
        ("", -32700, None),
        ('{"jsonrpc": "2.0", "method": "who"', -32700, None),
        ("[]", -32600, None),
        ("42", -32600, None),
        ('{"jsonrpc": "1.0", "method": "who", "id": 7}', -32600, 7),
        ('{"jsonrpc": "2.0", "method": 5, "id": 8}', -32600, 8),
        ('{"jsonrpc": "2.0", "method": "nope", "id": 9}', -32601, 9),
        ('{"jsonrpc": "2.0", "method": "on_connect", "id": 10}', -32601, 10),
        ('{"jsonrpc": "2.0", "method": "_finish", "id": 11}', -32601, 11),
        ('{"jsonrpc": "2.0", "method": "send", "params": [], "id": 12}', -32602, 12),
        ('{"jsonrpc": "2.0", "method": "send", "params": [1], "id": 13}', -32602, 13),
        ('{"jsonrpc": "2.0", "method": "send", "params": {"txt": "a"}, "id": 14}', -32602, 14),
        ('{"jsonrpc": "2.0", "method": "send", "params": "hi", "id": 15}', -32600, 15),
    ],
)
async def test_bad_input_gets_the_standard_error_and_the_socket_stays_open(
    demo_server: ServerProcess, frame: str, code: int, answer_id: Any
) -> None:
    """Each kind of bad input is answered with its JSON-RPC error; calls work afterwards."""
    peer = await Peer.open(url(demo_server, fresh("bad")))
    await peer.send_raw(frame)
    reply = await peer.recv_json()
    assert reply["jsonrpc"] == "2.0"
    assert reply["error"]["code"] == code
    assert reply["id"] == answer_id
    assert "Traceback" not in json.dumps(reply)
    assert await peer.call("who") == [{"id": peer.id, "name": None}]
    await peer.close()


@pytest.mark.parametrize("size", [0, 130, 64 * 1024])
async def test_binary_frames_of_any_size_get_an_error_not_a_crash(
    demo_server: ServerProcess, size: int
) -> None:
    """A binary frame (0 B, 130 B, 64 KiB: the RpcHandler limit) gets -32001; the socket stays usable."""
    peer = await Peer.open(url(demo_server, fresh("bin")))
    await peer.send_raw(b"\x00" * size)
    reply = await peer.recv_json()
    assert reply["error"]["code"] == -32001
    assert reply["id"] is None
    assert await peer.call("who") == [{"id": peer.id, "name": None}]
    await peer.close()


@pytest.mark.parametrize("size", [130, 64 * 1024])
async def test_text_frames_of_130_bytes_and_64_kib_are_served(demo_server: ServerProcess, size: int) -> None:
    """A valid call padded to the frame size (at most the RpcHandler default) is answered."""
    peer = await Peer.open(url(demo_server, fresh("sizes")))
    call = {"jsonrpc": "2.0", "method": "who", "id": 1, "pad": ""}
    call["pad"] = "x" * (size - len(json.dumps(call)))
    frame = json.dumps(call)
    assert len(frame.encode()) == size
    await peer.send_raw(frame)
    assert (await peer.recv_json())["result"] == [{"id": peer.id, "name": None}]
    await peer.close()


async def test_a_text_frame_over_64_kib_closes_1009(demo_server: ServerProcess) -> None:
    """One byte over the RpcHandler default of 64 KiB closes the chat socket with 1009."""
    peer = await Peer.open(url(demo_server, fresh("sizes")))
    await peer.send_raw(" " * (64 * 1024 + 1))
    with pytest.raises(websockets.ConnectionClosed):
        await peer.recv_json()
    assert peer.ws.close_code == 1009


async def test_batches_are_answered_as_batches(demo_server: ServerProcess) -> None:
    """A batch gets one array of responses; its notifications get none."""
    peer = await Peer.open(url(demo_server, "batch"))
    batch = [
        {"jsonrpc": "2.0", "method": "who", "id": "a"},
        {"jsonrpc": "2.0", "method": "send", "params": ["in a batch"]},
        {"jsonrpc": "2.0", "method": "nope", "id": "b"},
        1,
    ]
    await peer.send_raw(json.dumps(batch))
    message = await peer.notification("message")
    assert message["params"]["text"] == "in a batch"
    replies = await peer.recv_json()
    assert isinstance(replies, list)
    assert [r.get("id") for r in replies] == ["a", "b", None]
    assert replies[0]["result"] == [{"id": peer.id, "name": None}]
    assert [r["error"]["code"] for r in replies[1:]] == [-32601, -32600]
    await peer.send_raw(json.dumps([{"jsonrpc": "2.0", "method": "send", "params": ["n"]}]))
    await peer.notification("message")
    await peer.nothing()
    await peer.close()


async def test_view_sends_to_one_socket_by_id(demo_server: ServerProcess) -> None:
    """POST /api/sockets/<id>/messages reaches that socket only, with from null; 202."""
    a = await Peer.open(url(demo_server, "view1"))
    b = await Peer.open(url(demo_server, "view1"))
    response = await http("POST", demo_server, f"/api/sockets/{b.id}/messages", json={"text": "from a view"})
    assert response.status_code == 202
    got = await b.notification("message")
    assert got["params"] == {"from": None, "name": None, "room": "view1", "text": "from a view"}
    await a.notification("joined")
    await a.nothing()
    await a.close()
    await b.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b"{}", 400),
        (b'{"text": 5}', 400),
        (b'{"text": ""}', 400),
        (json.dumps({"text": "x" * 2001}).encode(), 400),
    ],
)
async def test_view_rejects_malformed_bodies_with_400_json(
    demo_server: ServerProcess, body: bytes, status: int
) -> None:
    """A malformed body answers 400 with a JSON error, for an id and for a room."""
    peer = await Peer.open(url(demo_server, fresh("malformed")))
    for path in (f"/api/sockets/{peer.id}/messages", "/api/rooms/malformed/messages"):
        response = await http("POST", demo_server, path, content=body)
        assert response.status_code == status
        assert "error" in response.json()
    await peer.nothing()
    await peer.close()


async def test_view_answers_404_json_for_an_unknown_socket(demo_server: ServerProcess) -> None:
    """An unknown id answers 404 with a JSON error."""
    response = await http("POST", demo_server, "/api/sockets/nope/messages", json={"text": "hi"})
    assert response.status_code == 404
    assert response.json()["id"] == "nope"


async def test_view_sends_to_a_room_and_lists_its_sockets(demo_server: ServerProcess) -> None:
    """POST /api/rooms/<room>/messages reaches the room; GET .../sockets lists its ids."""
    a = await Peer.open(url(demo_server, "view2"))
    b = await Peer.open(url(demo_server, "view2"))
    outsider = await Peer.open(url(demo_server, "view3"))
    assert sorted(await room_sockets(demo_server, "view2")) == sorted([a.id, b.id])
    response = await http("POST", demo_server, "/api/rooms/view2/messages", json={"text": "all"})
    assert response.status_code == 202
    assert response.json() == {"delivered": 2}
    for peer in (a, b):
        assert (await peer.notification("message"))["params"]["text"] == "all"
    await outsider.nothing()
    for peer in (a, b, outsider):
        await peer.close()
    await eventually_empty(demo_server, "view2")


async def test_stats_view_counts_deliveries_of_its_process(demo_server: ServerProcess) -> None:
    """GET /api/stats: the node id, its open sockets, and ``delivered`` growing with each frame."""
    peer = await Peer.open(url(demo_server, "stats"))
    before = (await http("GET", demo_server, "/api/stats")).json()
    assert before["node"].startswith("wsmanager.node")
    assert before["sockets"] >= 1
    sent = await http("POST", demo_server, "/api/rooms/stats/messages", json={"text": "counted"})
    assert sent.json() == {"delivered": 1}
    assert (await peer.notification("message"))["params"]["text"] == "counted"
    after = (await http("GET", demo_server, "/api/stats")).json()
    assert after["node"] == before["node"]
    assert after["counters"]["delivered"] >= before["counters"].get("delivered", 0) + 1
    refused = await http("POST", demo_server, "/api/stats")
    assert refused.status_code == 405 and "error" in refused.json()
    await peer.close()


async def test_view_invokes_a_client_method_and_gets_its_result(demo_server: ServerProcess) -> None:
    """POST /api/sockets/<id>/invoke: 200 result, 502 client error, 504 timeout."""
    received: list[tuple[int, int]] = []

    async def answer_five() -> int:
        return 5

    async def refuse() -> int:
        raise RpcError(7, "nope")

    async def never_answer() -> int:
        await asyncio.Event().wait()  # cancelled when the client closes
        return 0

    outcomes = [answer_five, refuse, never_answer]

    async def add(a: int, b: int) -> int:
        received.append((a, b))
        return await outcomes[len(received) - 1]()

    async with connect(url(demo_server, "invoke"), handlers={"add": add}) as client:
        body = {"method": "add", "params": [2, 3], "timeout": 2}
        for status in (200, 502, 504):
            response = await http("POST", demo_server, f"/api/sockets/{client.id}/invoke", json=body)
            assert response.status_code == status
            if status == 200:
                assert response.json() == {"result": 5}
            if status == 502:
                assert response.json()["error"]["code"] == 7
    assert received == [(2, 3)] * 3


async def test_registry_and_groups_are_empty_after_clients_leave(
    demo_server: ServerProcess,
) -> None:
    """Closing every socket (cleanly or by dropping TCP) leaves no ids in the room."""
    peers = [await Peer.open(url(demo_server, "leave")) for _ in range(5)]
    assert len(await room_sockets(demo_server, "leave")) == 5
    for peer in peers[:3]:
        await peer.close()
    for peer in peers[3:]:
        peer.ws.transport.abort()  # no close frame
    await eventually_empty(demo_server, "leave")


async def test_unknown_paths_and_bad_rooms_are_refused_cleanly(demo_server: ServerProcess) -> None:
    """A path no handler serves, or an invalid room name, is refused with HTTP 404
    (403 on daphne, which can send no other status)."""
    expected = 403 if demo_server.kind == "daphne" else 404
    for path in ("/ws/nowhere/", "/ws/chat/bad%20room/", "/ws/chat/" + "x" * 65 + "/"):
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(demo_server.ws_url + path)
        assert info.value.response.status_code == expected
    peer = await Peer.open(url(demo_server, "still-up"))
    await peer.close()


async def test_cross_site_origin_is_refused(demo_server: ServerProcess) -> None:
    """A browser page from another site cannot open a socket; the site's own can."""
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(url(demo_server, "origin"), origin="http://evil.example")
    peer = await Peer.open(url(demo_server, "origin"), origin=f"http://127.0.0.1:{demo_server.port}")
    await peer.close()


async def test_demo_page_and_client_script_are_served(demo_server: ServerProcess) -> None:
    """GET / serves the chat page and the page's scripts are reachable."""
    page = await http("GET", demo_server, "/")
    assert page.status_code == 200
    assert 'data-testid="messages"' in page.text
    script = await http("GET", demo_server, "/static/wsmanager/wsmanager.js")
    assert script.status_code == 200


async def test_api_errors_are_json_for_wrong_methods_and_unknown_paths(demo_server: ServerProcess) -> None:
    """A wrong method answers 405 and an unknown API path 404, both with JSON bodies."""
    wrong = await http("GET", demo_server, "/api/rooms/r/messages")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
    assert "error" in wrong.json()
    missing = await http("GET", demo_server, "/api/nothing/here")
    assert missing.status_code == 404
    assert missing.json()["path"] == "/api/nothing/here"


async def test_with_debug_off_the_send_views_need_the_api_token() -> None:
    """DEBUG off: no token or a wrong one answers 403 JSON; the Bearer token is let in."""
    env = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "e2e-not-the-placeholder", "DEMO_API_TOKEN": "s3cret"}
    env["DEMO_DB"] = ":memory:"
    with DaphneProcess(env=env) as server:
        peer = await Peer.open(url(server, "guard"))
        path = f"/api/sockets/{peer.id}/messages"
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret"}):
            refused = await http("POST", server, path, json={"text": "x"}, headers=headers)
            assert refused.status_code == 403
            assert refused.json()["error"] == REFUSED
        allowed = await http(
            "POST", server, path, json={"text": "x"}, headers={"Authorization": "Bearer s3cret"}
        )
        assert allowed.status_code == 202
        assert (await peer.notification("message"))["params"]["text"] == "x"
        await peer.close()


async def test_a_burst_of_joins_gives_every_member_the_whole_room(demo_server: ServerProcess) -> None:
    """30 sockets join at once: each one's who() plus the joined/presence notices it gets
    name all 30, however the demo gathered them (presence_interval)."""
    peers = await asyncio.gather(*(Peer.open(url(demo_server, "burst")) for _ in range(30)))
    everyone = {p.id for p in peers}
    snapshots = await asyncio.gather(*(p.call("who") for p in peers))
    for peer, snapshot in zip(peers, snapshots, strict=True):
        seen = {m["id"] for m in snapshot}
        notes = list(peer.inbox)
        while True:
            for note in notes:
                if note.get("method") == "joined":
                    seen.add(note["params"]["id"])
                elif note.get("method") == "presence":
                    seen |= {entry["id"] for entry in note["params"]["joined"]}
            if seen == everyone:
                break
            # The last gathered interval may still be on its way (5 s without a frame fails).
            notes = [await peer.recv_json()]
        assert seen == everyone
    await asyncio.gather(*(p.close() for p in peers))


async def test_a_shared_file_is_streamed_up_and_reaches_the_room_as_one_message(
    demo_server: ServerProcess,
) -> None:
    """``share`` reads an upload of text chunks (the server's credit paces them) and sends the
    room one ``message`` with ``file``; more than 64 KiB of text is refused with 4002."""
    room = fresh("share")
    other = await Peer.open(url(demo_server, room, "?name=bea"))
    text = "line of a shared file\n" * 2000  # 44,000 characters in 11 chunks
    chunks = [text[i : i + 4000] for i in range(0, len(text), 4000)]
    async with connect(url(demo_server, room, "?name=ann")) as client:
        assert await client.upload("share", chunks, "notes.txt") == {"delivered": 2}
        got = (await other.notification("message"))["params"]
        assert (got["file"], got["name"], got["text"]) == ("notes.txt", "ann", text)
        with pytest.raises(RemoteError) as refused:
            await client.upload("share", ["x" * 40_000, "y" * 40_000], "big.txt")
        assert refused.value.code == 4002 and refused.value.data == {"max": 65536}
        assert await client.invoke("count") >= 2  # the socket goes on
    await other.close()
