"""``demo_chat.handlers``: what the demo's environment sets on its chat handler."""

from __future__ import annotations

import pytest

from demo_chat.handlers import rate_limit_from


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        ("", (100.0, 200.0)),
        ("  ", (100.0, 200.0)),
        ("off", None),
        ("OFF", None),
        ("20,40", (20.0, 40.0)),
        ("30", (30.0, 30.0)),
    ],
)
def test_the_rate_limit_comes_from_demo_rate_limit(value: str, limit: tuple[float, float] | None) -> None:
    """Empty: the library's default; ``off``: none; ``rate,burst`` or ``rate`` (burst = rate)."""
    assert rate_limit_from(value, (100.0, 200.0)) == limit
