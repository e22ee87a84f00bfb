"""Smoke test of the benchmark suite: ``python -m bench --quick`` runs to the end.

It proves the suite works (servers start, every scenario runs on every
system, the table is complete); it never looks at timings, which depend on
the machine.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_support import DEFAULT_REDIS_URL, redis_problem

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

# scenario -> case label fragments (quick sizes) and metrics of each row
EXPECTED = {
    "echo": (["1 conn", "4 conns"], ["msg/s", "p50 ms", "p99 ms"]),
    "rpc": (["2 conns"], ["calls/s", "p50 ms", "p99 ms"]),
    "fan-out": (["20 listeners"], ["deliveries/s", "round p50 ms", "round p99 ms"]),
    "send by id": (["2 clients"], ["req/s", "p50 ms", "p99 ms"]),
    "connections": (["200 sockets"], ["connects/s", "KiB/conn"]),
}


def sio_installed() -> bool:
    try:
        import socketio  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.timeout(150)
def test_quick_run_completes_with_every_row(tmp_path: Path) -> None:
    """--quick runs every scenario on every system and reports a positive number in every cell."""
    redis_url = os.environ.get("WSMANAGER_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    problem = redis_problem(redis_url)
    if problem is not None and os.environ.get("WSMANAGER_REQUIRE_REDIS") == "1":
        pytest.fail(f"{problem} (WSMANAGER_REQUIRE_REDIS=1)", pytrace=False)
    out = tmp_path / "results.json"
    markdown = tmp_path / "results.md"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--demo",
        "--json",
        str(out),
        "--markdown",
        str(markdown),
    ]
    cmd += ["--redis-url", redis_url if problem is None else "none"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert run.returncode == 0, f"bench failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"

    results = json.loads(out.read_text())
    systems = ["bare", "wsm"] + (["sio"] if sio_installed() else [])
    modes = 1 if problem is not None else 2  # in memory, and on Redis across processes
    rows = results["rows"]
    for scenario, (cases, metrics) in EXPECTED.items():
        for case in cases:
            for metric in metrics:
                found = [r for r in rows if (r["scenario"], r["metric"]) == (scenario, metric)]
                found = [r for r in found if case in r["case"]]
                per_mode = 1 if scenario in ("echo", "rpc") else modes
                assert len(found) == per_mode, (scenario, case, metric, [r["case"] for r in found])
                for row in found:
                    # The demo's chat (--demo) runs the fan-out and connections scenarios only.
                    demo = ["demo-daphne"] if scenario in ("fan-out", "connections") else []
                    for system in systems + demo:
                        values = row["values"].get(system)
                        assert values, (scenario, row["case"], metric, system)
                        assert all(not math.isnan(v) and v > 0 for v in values), (row, system)
    assert "| scenario |" in markdown.read_text()
    assert "| /ceiling |" in markdown.read_text()  # the raw ceiling ran: every system against it
    assert "python -m bench --quick" in results["command"]
