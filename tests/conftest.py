"""Shared fixtures: a clean wsmanager state per test, and real daphne servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import DaphneProcess
from wsmanager.testing import reset


@pytest.fixture(autouse=True)
def _fresh_wsmanager() -> Iterator[None]:
    """Each test starts with an empty in-memory registry, a new node, and no
    database use remembered (in-memory SQLite never really closes, and a
    later non-database test must not hop to close it)."""
    reset()
    yield
    reset()


@pytest.fixture(scope="module")
def demo_server() -> Iterator[DaphneProcess]:
    """One real daphne process serving the demo (in-memory layer and registry)."""
    server = DaphneProcess(env={"DEMO_DB": ":memory:"})
    server.start()
    yield server
    server.stop()
