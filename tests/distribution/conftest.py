"""The distribution tests run only when asked (``WSMANAGER_TEST_WHEEL=1``; nox sets it).

They build every distribution and install the wheel into a fresh virtual
environment from PyPI: a minute or two, and the network. ``make test`` skips
them with this reason; ``make matrix`` (``noxfile.py``) runs them on each
Python and Django of the matrix, which is where they say something (the
same code installed as users get it, beside each supported Django).
"""

from __future__ import annotations

import os

import pytest

ENABLED = os.environ.get("WSMANAGER_TEST_WHEEL") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(
        reason="builds and installs the wheel: run by `make matrix` (or WSMANAGER_TEST_WHEEL=1)"
    )
    for item in items:
        if item.get_closest_marker("wheel") is not None:
            item.add_marker(skip)
