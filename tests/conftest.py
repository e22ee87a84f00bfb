"""Shared fixtures: a clean wsmanager state per test, and real servers.

``server_kind`` is parametrised over every ASGI server of
:data:`tests.servers.SERVER_KINDS` (or those in ``WSMANAGER_TEST_SERVERS``),
module-scoped so that pytest runs a module's tests server by server and
starts each server once per module. A test (or a fixture) that asks for
``server_kind`` runs once per server; ``demo_server`` is the demo on that
server. A conftest further down may override ``server_kind`` with one
fixed kind (the browser tests run on daphne only).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import ServerProcess, selected_kinds, server_process
from wsmanager.testing import reset


@pytest.fixture(autouse=True)
def _fresh_wsmanager() -> Iterator[None]:
    """Each test starts with an empty in-memory registry, a new node, and no
    database use remembered (in-memory SQLite never really closes, and a
    later non-database test must not hop to close it)."""
    reset()
    yield
    reset()


@pytest.fixture(scope="module", params=selected_kinds())
def server_kind(request: pytest.FixtureRequest) -> str:
    """The name of the ASGI server the test runs against (daphne, uvicorn, ...)."""
    kind: str = request.param
    return kind


@pytest.fixture(scope="module")
def demo_server(server_kind: str) -> Iterator[ServerProcess]:
    """One real server process of ``server_kind`` serving the demo (in-memory layer and registry)."""
    server = server_process(server_kind, env={"DEMO_DB": ":memory:"})
    server.start()
    yield server
    server.stop()
