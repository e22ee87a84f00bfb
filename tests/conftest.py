"""Shared fixtures: a clean wsmanager state per test, and real servers.

``server_kind`` is parametrised over every ASGI server of
:data:`tests.servers.SERVER_KINDS` (or those in ``WSMANAGER_TEST_SERVERS``),
module-scoped so that pytest runs a module's tests server by server and
starts each server once per module. A test (or a fixture) that asks for
``server_kind`` runs once per server; ``demo_server`` is the demo on that
server. A conftest further down may override ``server_kind`` with one
fixed kind (the browser tests run on daphne only).

``make test`` runs the suite on pytest-xdist workers (``-n 2``, and
``--dist loadgroup`` from pyproject.toml). :func:`pytest_collection_modifyitems`
puts each module's tests, or each module's tests of one server kind, into one
group that runs on one worker in order, so that module-scoped servers (and
browsers) start once. tests/README.md has the rules that keep a test
xdist-safe.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import ServerProcess, selected_kinds, server_process
from wsmanager.testing import reset


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One xdist group per module, or per module and server kind (the ``server_kind``
    parameter): a group runs on one worker, in collection order, so a module-scoped
    fixture is set up once per group. A test that names its own ``xdist_group`` keeps it."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        module = item.nodeid.split("::", 1)[0]
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("server_kind") if callspec is not None else None
        item.add_marker(pytest.mark.xdist_group(f"{module}[{kind}]" if kind else module))


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
