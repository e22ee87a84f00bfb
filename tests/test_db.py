"""Database hygiene (``wsmanager._db``): stale connections are closed before each
message, as Channels does, but the hop to the sync thread is only paid while the
process has a database connection.

Django's own ``connection_created`` signal drives the mark; the clean-up itself
(``close_old_connections``) and the list of open connections are stood in for,
because the test suite's in-memory SQLite database ignores ``close()``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.db.backends.signals import connection_created

from tests.handlers import application
from wsmanager import _db as db


class FakeConnection:
    def __init__(self, is_open: bool) -> None:
        self.connection = object() if is_open else None


class FakeConnections:
    """Stands in for ``django.db.connections``: ``open`` says whether one stays open."""

    def __init__(self) -> None:
        self.open = False

    def all(self, initialized_only: bool = False) -> list[FakeConnection]:
        return [FakeConnection(self.open)]


CleanUps = tuple[list[str], FakeConnections]


@pytest.fixture
def clean_ups(monkeypatch: pytest.MonkeyPatch) -> CleanUps:
    """The names of the threads each clean-up ran in, and the stand-in connections."""
    threads: list[str] = []
    fake = FakeConnections()
    monkeypatch.setattr(db, "close_old_connections", lambda: threads.append(threading.current_thread().name))
    monkeypatch.setattr(db, "connections", fake)
    return threads, fake


async def test_no_connection_means_no_clean_up(clean_ups: CleanUps) -> None:
    """A process that never opened a database connection never hops to the sync thread."""
    threads, _ = clean_ups
    await db.close_old_connections_if_used()
    assert threads == []


async def test_a_new_connection_is_cleaned_up_in_the_sync_thread_once_closed(clean_ups: CleanUps) -> None:
    """connection_created marks the process; the clean-up runs off the loop, then stops when none is open."""
    threads, _ = clean_ups
    connection_created.send(sender=None, connection=FakeConnection(True))
    await db.close_old_connections_if_used()
    assert len(threads) == 1 and threads[0] != threading.current_thread().name
    await db.close_old_connections_if_used()
    assert len(threads) == 1


async def test_a_connection_left_open_keeps_being_checked(clean_ups: CleanUps) -> None:
    """While a connection stays open (CONN_MAX_AGE), every message checks it again."""
    threads, connections = clean_ups
    connections.open = True
    connection_created.send(sender=None, connection=FakeConnection(True))
    for _ in range(3):
        await db.close_old_connections_if_used()
    assert len(threads) == 3
    connections.open = False
    await db.close_old_connections_if_used()
    await db.close_old_connections_if_used()
    assert len(threads) == 4


async def test_handler_cleans_up_before_the_handshake_and_each_frame(clean_ups: CleanUps) -> None:
    """With a connection open, the handshake and every received frame run the clean-up first."""
    threads, connections = clean_ups
    connections.open = True
    connection_created.send(sender=None, connection=FakeConnection(True))
    comm: Any = WebsocketCommunicator(application, "/ws/echo/")
    assert (await comm.connect())[0]
    assert len(threads) == 1
    for text in ("a", "b"):
        await comm.send_to(text_data=text)
        assert await comm.receive_from() == text
    assert len(threads) == 3
    await comm.disconnect()
