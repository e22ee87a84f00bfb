"""tests.node_tools: which Node.js versions an npm ``engines`` range admits."""

from __future__ import annotations

import pytest

from tests.node_tools import satisfies

VITE_8 = "^20.19.0 || >=22.12.0"


@pytest.mark.parametrize(
    ("version", "engines", "expected"),
    [
        ((20, 20, 2), VITE_8, True),
        ((20, 19, 0), VITE_8, True),
        ((18, 20, 4), VITE_8, False),  # Debian 12's Node.js
        ((21, 7, 0), VITE_8, False),
        ((22, 11, 0), VITE_8, False),
        ((22, 12, 0), VITE_8, True),
        ((24, 0, 0), VITE_8, True),
        ((16, 20, 0), ">=16.20.0", True),
        ((16, 19, 9), ">=16.20.0", False),
        ((20, 1, 0), ">=18 <21", True),
        ((21, 0, 0), ">=18 <21", False),
        ((18, 0, 0), "18.x || >=20", True),  # an unknown form is left to the tool
    ],
)
def test_satisfies_an_engines_range(version: tuple[int, int, int], engines: str, expected: bool) -> None:
    assert satisfies(version, engines) is expected
