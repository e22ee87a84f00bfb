"""Runs one of the bench's scripts as users do, for the smoke tests of ``bench`` (not a test)."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import ROOT


def run_bench(module: str, *args: str, timeout: float = 300) -> str:
    """``python -m bench.<module> *args`` from the checkout's root; what it printed. Fails the
    test, with the end of its standard error, when it exits with another status than 0."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
