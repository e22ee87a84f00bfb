"""Smoke test of ``python -m bench.scale_costs`` at small sizes: the servers, the private Redis,
the room's sockets, the sends, broadcasts and presence cycles run to the end and every figure is
reported. Timings are not looked at; the commands per operation are, since none may grow with
the room (docs/benchmarks.md, "Sends, presence changes and broadcasts")."""

from __future__ import annotations

import json
import shutil

import pytest

from bench.scale_costs import method_of
from tests.bench_runs import run_bench

pytestmark = pytest.mark.e2e


def test_method_of_reads_a_notifications_method_only() -> None:
    assert method_of('{"jsonrpc":"2.0","method":"joined","params":{"id":"x"}}') == "joined"
    assert method_of('{"jsonrpc":"2.0","id":1,"result":true}') == ""


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_scale_costs_runs_and_no_operation_grows_with_the_room() -> None:
    args = ["--members", "4", "24", "--sends", "12", "--broadcasts", "6", "--cycles", "3", "--idle", "1"]
    report = json.loads(run_bench("scale_costs", *args))
    assert report["processes"] == 2
    small, large = report["runs"]
    assert (small["members"], large["members"]) == (4, 24)
    for run in (small, large):
        assert run["send"]["calls"]["hmget"] == pytest.approx(1.0, abs=0.2)  # the route, once
        assert run["broadcast"]["calls"]["hgetall"] == pytest.approx(1.0, abs=0.2)  # the counts, once
        for op in ("send", "broadcast", "presence_cycle"):
            assert run[op]["commands"] > 0 and run[op]["bytes_in"] > 0 and run[op]["bytes_out"] > 0
        assert run["frames_seen"]["joined"] == run["frames_seen"]["left"] == run["members"]
        assert "per_second" in run["idle"]
        assert all(kib > 0 for kib in run["rss_kib"]["before"] + run["rss_kib"]["after"])
    # Six times the room: the same commands per operation, give or take the layer's batching.
    for op in ("send", "broadcast", "presence_cycle"):
        assert large[op]["commands"] < small[op]["commands"] * 1.3
