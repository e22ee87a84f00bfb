"""Smoke test of ``python -m bench.hostile_client``: the measurement behind docs/security.md
("The Python client against a hostile server") runs, and its cheapest attack reports what the
client did."""

from __future__ import annotations

import json

from tests.bench_runs import run_bench


def test_the_frame_attack_is_measured_and_the_client_closes_1009() -> None:
    out = run_bench("hostile_client", "--attacks", "frame", timeout=120)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["attack"] == "frame" and report["state"] == "closed"
    assert report["on_closed"][0].startswith("Closed(1009, ")
    assert report["on_error"][0].startswith("LimitExceeded: the server went over max_message_size")
    assert report["stats"]["closed_too_big"] == 1
    assert report["peak_rss_mb"] < 150  # the 200 MB frame was never read
