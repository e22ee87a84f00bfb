"""Smoke test of ``python -m bench.topics_cost`` at small sizes: the servers, the private
Redis, the subscribers and both publishers run to the end and report every figure. Timings
are not looked at; the commands per publication are, since they must not grow with the
subscribers (docs/benchmarks.md, "Topics")."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.bench_runs import run_bench

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_topics_cost_runs_and_its_commands_do_not_grow_with_subscribers() -> None:
    args = ["--subscribers", "5", "40", "--publications", "20", "--fanout", "10", "--repeat", "1"]
    report = json.loads(run_bench("topics_cost", *args))
    small, large = report["cost"]
    assert (small["subscribers"], large["subscribers"]) == (5, 40)
    for row in (small, large):
        assert row["calls_per_publication"]["xadd"] == pytest.approx(1.0, abs=0.2)
        assert row["bytes_in_per_publication"] > 0 and row["bytes_out_per_publication"] > 0
    # Eight times the subscribers: the same commands, give or take the heartbeats' noise.
    assert large["commands_per_publication"] < small["commands_per_publication"] * 1.3
    assert set(report["fanout"]["deliveries_per_second"]) == {"publish", "notify_group"}
