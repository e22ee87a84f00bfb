"""Smoke test of ``python -m bench.encodings_cost --quick``: it runs to the end and prints
every table. Timings are not looked at; the bytes are exact, and MessagePack is smaller
than JSON before compression (docs/benchmarks.md, "Encodings and compression")."""

from __future__ import annotations

import re

from tests.bench_runs import run_bench


def test_encodings_cost_runs_and_reports_bytes() -> None:
    out = run_bench("encodings_cost", "--quick")
    assert out.count("| server work per message | CPU µs |") == 2
    assert out.count("| memory a compressed socket holds | KiB |") == 2
    rows = re.findall(r"^\| (JSON|MessagePack) \| (\d+) \| (\d+) / (\d+) \|", out, re.MULTILINE)
    assert [name for name, *_ in rows] == ["JSON", "MessagePack", "JSON", "MessagePack"]
    sizes = [int(size) for _, size, *_ in rows]
    assert sizes[1] < sizes[0] and sizes[3] < sizes[2]
