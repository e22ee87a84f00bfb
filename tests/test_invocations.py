"""``wsmanager.jsonrpc._invocations``: the server's calls to one client awaiting their answers.

Numbering, settling by a peer's response, failing everything when the socket
goes; no I/O, so each test drives the table directly.
"""

from __future__ import annotations

import pytest

from wsmanager.exceptions import ConnectionClosed, RemoteError
from wsmanager.jsonrpc._invocations import Invocations
from wsmanager_client.protocol import ErrorObject, Response


def table(socket_id: str = "s1") -> Invocations:
    calls = Invocations()
    calls.socket_id = socket_id
    return calls


async def test_calls_are_numbered_one_two_three_per_socket() -> None:
    """Ids start at 1 on each socket and never repeat, even after a call is forgotten."""
    a, b = table("a"), table("b")
    first, _ = a.start("m")
    a.forget(first)
    assert [first, a.start("m")[0], a.start("m")[0]] == [1, 2, 3]
    assert b.start("m")[0] == 1


async def test_a_result_settles_the_call_it_names_and_no_other() -> None:
    calls = table()
    one, f1 = calls.start("double")
    two, f2 = calls.start("double")
    calls.settle(Response(id=two, result=42))
    assert f2.result() == 42
    assert not f1.done()
    calls.settle(Response(id=one, result=[1, "x"]))
    assert f1.result() == [1, "x"]


async def test_an_error_answer_raises_remote_error_with_the_clients_facts() -> None:
    calls = table("sock")
    call_id, future = calls.start("double")
    calls.settle(Response(id=call_id, error=ErrorObject(code=-32000, message="nope", data={"k": 1})))
    with pytest.raises(RemoteError) as caught:
        future.result()
    err = caught.value
    assert (err.socket_id, err.method, err.code, err.message, err.data) == (
        "sock",
        "double",
        -32000,
        "nope",
        {"k": 1},
    )


@pytest.mark.parametrize("answer_id", [99, "1", None], ids=["unknown", "string", "none"])
async def test_an_answer_to_an_unknown_id_is_ignored(answer_id: object) -> None:
    """A late, made-up or mistyped id settles nothing (the string "1" is not the call 1)."""
    calls = table()
    _, future = calls.start("m")
    calls.settle(Response(id=answer_id, result="forged"))  # type: ignore[arg-type]
    assert not future.done()


async def test_a_call_is_settled_at_most_once() -> None:
    calls = table()
    call_id, future = calls.start("m")
    calls.settle(Response(id=call_id, result="first"))
    calls.settle(Response(id=call_id, result="second"))
    calls.settle(Response(id=call_id, error=ErrorObject(code=1, message="late")))
    assert future.result() == "first"


async def test_a_forgotten_call_ignores_its_late_answer() -> None:
    """After the caller stopped waiting (a timeout), the answer finds nothing to settle."""
    calls = table()
    call_id, future = calls.start("m")
    calls.forget(call_id)
    calls.settle(Response(id=call_id, result="late"))
    assert not future.done()


async def test_fail_all_fails_every_pending_call_with_connection_closed_and_empties_the_table() -> None:
    calls = table("gone")
    _, settled = calls.start("a")
    calls.settle(Response(id=1, result="ok"))
    _, f2 = calls.start("b")
    _, f3 = calls.start("c")
    calls.fail_all(1006)
    assert settled.result() == "ok"
    for future in (f2, f3):
        with pytest.raises(ConnectionClosed) as caught:
            future.result()
        assert (caught.value.socket_id, caught.value.code) == ("gone", 1006)
    calls.settle(Response(id=2, result="after"))  # nothing left to settle, nothing raised
    assert calls.start("d")[0] == 4
