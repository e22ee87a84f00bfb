"""Shared fixtures: a clean wsmanager state per test, and real servers.

``server_kind`` is parametrised over every ASGI server (:func:`tests.servers.app_kinds`:
daphne, uvicorn, hypercorn, granian; a module that tests the transport imports
:func:`tests.servers.every_implementation` for uvicorn's other two implementations),
module-scoped so that pytest runs a module's tests server by server and
starts each server once per module. A test (or a fixture) that asks for
``server_kind`` runs once per server; ``demo_server`` is the demo on that
server. A module may override ``server_kind`` with a fixture of its own
(tests/browser/test_close_on_purpose.py, every kind).

``make test`` runs the suite on pytest-xdist workers (``-n 5``, ``TEST_WORKERS``).
:func:`xdist_group` puts each module's tests, or each module's tests of one
server kind, into one group that runs on one worker in order, so that
module-scoped servers (and browsers) start once. tests/README.md has the
rules that keep a test xdist-safe.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any

import pytest

from tests.servers import (
    SERVER_KINDS,
    ServerProcess,
    app_kinds,
    running_servers,
    shared_server,
    stop_shared_servers,
)
from wsmanager.testing import reset

# Every demo server and command the suite starts inherits this: passwords hashed with MD5,
# not PBKDF2 (0.5 s of CPU per login or user created; demo_chat/settings.py).
os.environ.setdefault("DEMO_PASSWORD_HASHER", "md5")


def xdist_group(nodeid: str) -> str:
    """The group of a test on pytest-xdist's workers: its ``xdist_group`` mark where pytest
    shows it (the ``@name`` suffix), else its module and, for a test parametrised by a server
    kind (``[uvicorn-sansio-1009]``), that kind. A group runs on one worker, in file order, so
    module-scoped fixtures (servers, browsers) start once per group."""
    at, bracket = nodeid.rfind("@"), nodeid.rfind("]")
    if at > bracket:
        return nodeid[at + 1 :]
    module, _, rest = nodeid.partition("::")
    if rest.endswith("]") and "[" in rest:
        params = rest[rest.rindex("[") + 1 : -1].split("-")
        for kind in sorted(SERVER_KINDS, key=len, reverse=True):
            words = kind.split("-")
            if any(params[i : i + len(words)] == words for i in range(len(params))):
                return f"{module}:{kind}"
    return module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N`` (whose default distribution is ``load``) or ``--dist loadgroup``: the groups
    of :func:`xdist_group`, each on one worker, started in collection order (browser and
    end-to-end modules first: the long groups start early). Other ``--dist`` modes are
    pytest-xdist's own.

    pytest-xdist's own loadgroup reads ``xdist_group`` marks through node ids, which
    pytest 9.2 no longer lets it change (pytest-dev/pytest-xdist#1386); this scheduler
    derives the groups from the node ids the workers report.
    """
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    config.option.loadscopereorder = False
    return GroupScheduling(config, log)


#: The share of a test's pytest-timeout after which an async test's own event loop cancels it.
ASYNC_SHARE = 0.9


#: Marks of the tests that take seconds each (servers, Redis, a browser, a build).
LONG_MARKS = ("browser", "e2e", "redis", "slow")


def long_modules_first(items: list[pytest.Item]) -> None:
    """Put the modules that hold a long test (one with a mark of :data:`LONG_MARKS`, or a
    Hypothesis property) before the others, each module's tests in their order: the
    scheduler starts groups in this order, so the last groups a worker takes are unit
    modules of a second or two, not a 40-second one that leaves the other workers idle
    at the end."""
    long = set()
    for item in items:
        func = getattr(item, "obj", None)
        if any(item.get_closest_marker(mark) for mark in LONG_MARKS) or hasattr(func, "hypothesis"):
            long.add(_module_of(item))
    items.sort(key=lambda item: _module_of(item) not in long)  # stable: order kept within


def _module_of(item: pytest.Item) -> str:
    # By module, not by group: a module's groups stay together, so that a serial run
    # sets its module-scoped fixtures up once.
    return item.nodeid.partition("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long modules first (:func:`long_modules_first`). Every ``async def`` test runs under
    ``asyncio.timeout`` at :data:`ASYNC_SHARE` of its
    pytest-timeout (the ini's 60 s, or its ``timeout`` mark), so that a slow one fails with
    its traceback. pytest-timeout's own SIGALRM raises wherever the main thread is; inside
    one of asyncio's callbacks (a transport's ``connection_lost``) the event loop swallows it
    and the callback is left half done: seen as a test that waited forever."""
    long_modules_first(items)
    for item in items:
        func = getattr(item, "obj", None)
        limit = _timeout_of(item)
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(func) and limit > 0:
            item.obj = _bounded(func, limit * ASYNC_SHARE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report carries what each server process still running says: its
    log without the access lines (a refusal's reason, a traceback). A server answers a
    client only with a status or a close code; why is in its log, which CI does not keep."""
    report: pytest.TestReport = yield
    if report.failed:
        for server in running_servers():
            try:
                events = server.log_events()
            except OSError as exc:  # its log file gone: the failure is still reported
                events = f"(its log could not be read: {exc})"
            report.sections.append((f"log of {server!r}", events))
    return report


def _timeout_of(item: pytest.Item) -> float:
    """The test's pytest-timeout as that plugin resolves it: its ``timeout`` mark, else
    ``--timeout``, else ``PYTEST_TIMEOUT``, else the ini's. 0 (no bound) under ``--pdb`` or
    without the plugin (``-p no:timeout``)."""
    config = item.config
    if not config.pluginmanager.hasplugin("timeout") or config.getoption("usepdb", False):
        return 0.0
    mark = item.get_closest_marker("timeout")
    if mark is not None:
        value = mark.args[0] if mark.args else mark.kwargs.get("timeout", 0)
    else:
        value = config.getoption("timeout", None)
        if value is None:
            value = os.environ.get("PYTEST_TIMEOUT") or config.getini("timeout")
    return float(value or 0)


def _bounded(
    func: Callable[..., Coroutine[Any, Any, Any]], seconds: float
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(func)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(seconds):
            return await func(*args, **kwargs)

    return bounded


@pytest.fixture(autouse=True)
def _fresh_wsmanager() -> Iterator[None]:
    """Each test starts with an empty in-memory registry, a new node, and no
    database use remembered (in-memory SQLite never really closes, and a
    later non-database test must not hop to close it)."""
    reset()
    yield
    reset()


@pytest.fixture(scope="module", params=app_kinds())
def server_kind(request: pytest.FixtureRequest) -> str:
    """The name of the ASGI server the test runs against (daphne, uvicorn-sansio, ...)."""
    kind: str = request.param
    return kind


@pytest.fixture(scope="session")
def _shared_servers() -> Iterator[None]:
    """The servers of :func:`tests.servers.shared_server`, stopped when the session ends."""
    yield
    stop_shared_servers()


@pytest.fixture(scope="module")
def demo_server(server_kind: str, _shared_servers: None) -> ServerProcess:
    """A real server process of ``server_kind`` serving the demo (in-memory layer and
    registry), shared by the modules of this worker that ask for it (their tests use rooms
    of their own, and never stop or freeze it: a test that does starts its own)."""
    return shared_server(server_kind, env={"DEMO_DB": ":memory:"})


@pytest.fixture(scope="module")
def model_server(server_kind: str, _shared_servers: None) -> ServerProcess:
    """A real server process of ``server_kind`` serving tests/e2e/rpc_app.py (the RPC model:
    every parameter and result kind, calls back to the client, the demo besides), shared
    as :func:`demo_server` is."""
    return shared_server(server_kind, app="tests.e2e.rpc_app:application", env={"DEMO_DB": ":memory:"})
