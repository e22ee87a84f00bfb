"""wsmanager's pytest plugin: a clean wsmanager around every test.

pytest loads it by itself wherever wsmanager is installed (the ``pytest11``
entry point ``wsmanager``); ``-p no:wsmanager`` turns it off, and
``-p wsmanager.testing.plugin`` loads it where plugin autoloading is off
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD``).

Guarantees: before and after each test, :func:`wsmanager.testing.reset`
forgets the process's registry instance (so the in-memory registry starts
empty), the node and its background tasks, the counters, the refusal log
throttle and the rest of wsmanager's process state. Set the ini option
``wsmanager_reset = false`` to keep that state across tests (a server started
once per session in the test process needs its node).

Non-guarantees: a Redis registry's keys are not deleted (that needs its event
loop: ``await wsmanager.testing.areset()`` in an async fixture of your own, with a
key prefix of the tests' own); nothing of the database is touched (that is
pytest-django's ``django_db`` marker: see docs/testing.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import reset

__all__ = ["pytest_addoption"]

_RESET_INI = "wsmanager_reset"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _RESET_INI,
        "reset wsmanager's process state (registry, node, counters) around every test",
        type="bool",
        default=True,
    )


@pytest.fixture(autouse=True)
def _wsmanager_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    """``wsmanager.testing.reset()`` before and after the test (see the module docstring)."""
    if not request.config.getini(_RESET_INI):
        yield
        return
    reset()
    yield
    reset()
