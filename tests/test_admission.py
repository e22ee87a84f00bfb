"""Admission (``wsmanager.connection._admission``): the user of a scope, the Origin check,
``require_authenticated``, ``authorize()`` and the per-user connection cap."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings

from tests import limit_handlers
from tests.limit_handlers import (
    AuthorizingHandler,
    CappedHandler,
    FakeUser,
    MembersOnlyHandler,
    client,
    receive_close,
)
from wsmanager.connection._admission import user_id_of
from wsmanager.node import get_node
from wsmanager.observe import _counters as counters

_clean_events = pytest.fixture(autouse=True)(limit_handlers.clean_events)


def test_user_id_is_the_primary_key_of_an_authenticated_user_only() -> None:
    """An authenticated user gives its pk as a string; anonymous, unauthenticated or none give None."""
    assert user_id_of({"user": FakeUser(42)}) == "42"
    assert user_id_of({"user": FakeUser(42, is_authenticated=False)}) is None
    assert user_id_of({"user": AnonymousUser()}) is None
    assert user_id_of({}) is None


@pytest.mark.parametrize(
    ("origin", "admitted"),
    [(b"http://testserver", True), (b"https://evil.example", False), (None, True)],
    ids=["allowed", "foreign", "missing"],
)
async def test_origin_is_checked_before_anything_else(origin: bytes | None, admitted: bool) -> None:
    """A foreign Origin is refused with 403 before ``authorize()`` runs; a missing one is allowed."""
    comm = client("/ws/authorize/yes/")
    if origin is not None:
        comm.scope["headers"] = [(b"origin", origin)]
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        connected, _ = await comm.connect()
    assert connected is admitted
    assert [e[0] for e in limit_handlers.events] == (["authorize", "connect"] if admitted else [])
    await comm.disconnect()
    assert await AuthorizingHandler.manager.acount() == 0


# -- handshakes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user",
    [None, AnonymousUser(), FakeUser(5, is_authenticated=False)],
    ids=["no-user", "anonymous", "not-authenticated"],
)
async def test_require_authenticated_refuses_anonymous_users(user: Any) -> None:
    """No user, AnonymousUser or an unauthenticated user: refused with 403, nothing registered."""
    comm = client("/ws/members/", user)
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()
    assert await MembersOnlyHandler.manager.acount() == 0


async def test_require_authenticated_admits_an_authenticated_user() -> None:
    """An authenticated scope user connects and is recorded as the socket's user."""
    comm = client("/ws/members/", FakeUser(7))
    assert (await comm.connect())[0]
    (sid,) = await MembersOnlyHandler.manager.aids()
    assert (await MembersOnlyHandler.manager.aget(sid)).user_id == "7"
    assert await MembersOnlyHandler.manager.auser_sockets(7) == [sid]
    await comm.send_to(text_data="hi")
    assert await comm.receive_from() == "hi"
    await comm.disconnect()


async def test_authorize_true_admits_and_runs_before_registration() -> None:
    """``authorize()`` runs before the socket has an id or an entry; True lets it in."""
    comm = client("/ws/authorize/yes/")
    assert (await comm.connect())[0]
    (sid,) = await AuthorizingHandler.manager.aids()
    assert limit_handlers.events == [("authorize", "yes", "", 0), ("connect", sid)]
    await comm.disconnect()


@pytest.mark.parametrize("how", ["no", "raise", "none"])
async def test_authorize_refusal_leaves_nothing_behind(how: str) -> None:
    """False, an exception, or no answer at all (fail closed) refuse with 403 before on_connect."""
    comm = client(f"/ws/authorize/{how}/")
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()
    assert limit_handlers.events == [("authorize", how, "", 0)]
    assert await AuthorizingHandler.manager.acount() == 0
    assert not get_node().sockets
    assert counters.stats().get("refused_handshake", 0) == 1


async def test_user_over_the_connection_cap_is_accepted_then_closed_4429() -> None:
    """The (n+1)th socket of one user closes with 4429; the registry keeps n."""
    ann = FakeUser(1)
    first, second = client("/ws/capped/", ann), client("/ws/capped/", ann)
    assert (await first.connect())[0]
    assert (await second.connect())[0]
    kept = sorted(await CappedHandler.manager.auser_sockets(1))
    third = client("/ws/capped/", ann)
    assert (await third.connect())[0]
    close = await receive_close(third)
    assert (close["code"], close.get("reason")) == (4429, "too many connections")
    assert counters.stats().get("refused_handshake", 0) == 1
    assert type(close["code"]) is int
    await third.disconnect(4429)
    assert sorted(await CappedHandler.manager.auser_sockets(1)) == kept
    assert await CappedHandler.manager.acount() == 2
    assert limit_handlers.events == []  # the refused socket never opened: no on_disconnect
    await first.send_to(text_data="still here")
    assert await first.receive_from() == "still here"
    await first.disconnect()
    await second.disconnect()


async def test_connection_cap_counts_per_user_and_frees_slots() -> None:
    """Other users and anonymous sockets are not capped; a closed socket frees its slot."""
    comms = [client("/ws/capped/", FakeUser(1)) for _ in range(2)]
    comms += [client("/ws/capped/", FakeUser(2)) for _ in range(2)]
    comms += [client("/ws/capped/") for _ in range(3)]
    for comm in comms:
        assert (await comm.connect())[0]
    assert await CappedHandler.manager.acount() == 7
    await comms[0].disconnect()
    again = client("/ws/capped/", FakeUser(1))
    assert (await again.connect())[0]
    assert await again.receive_nothing()
    assert len(await CappedHandler.manager.auser_sockets(1)) == 2
    for comm in [*comms[1:], again]:
        await comm.disconnect()
    assert await CappedHandler.manager.acount() == 0
