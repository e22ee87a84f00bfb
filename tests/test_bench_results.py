"""bench.results: the ratios a benchmark reports, from the values of each repeat."""

from __future__ import annotations

import math

from bench.results import Row, ceiling_markdown, ceiling_text, table_markdown, table_text


def _row(**values: list[float]) -> Row:
    row = Row("fan-out", "300 listeners, 1 proc", "deliveries/s", True)
    for system, numbers in values.items():
        for number in numbers:
            row.add(system, number)
    return row


def test_pair_ratios_pair_each_repeat_with_the_base_of_the_same_repeat() -> None:
    row = _row(raw=[100.0, 200.0, math.nan], wsm=[90.0, 210.0, 50.0])
    assert row.pair_ratios("wsm", "raw") == [0.9, 1.05]


def test_ceiling_table_gives_the_median_pair_ratio_its_quartiles_and_how_many_reach_the_target() -> None:
    row = _row(raw=[100.0, 100.0, 100.0, 100.0, 100.0], wsm=[90.0, 94.0, 96.0, 97.0, 99.0])
    labels = {"raw": "raw websockets", "wsm": "wsmanager"}
    text = ceiling_text([row], ["wsm", "raw"], labels)
    assert text.splitlines()[1].split()[-8:] == [
        "100",
        "wsmanager",
        "96.0",
        "0.96",
        "0.92-0.98",
        "3",
        "of",
        "5",
    ]
    assert "| 0.96 | 0.92-0.98 | 3 of 5 |" in ceiling_markdown([row], ["wsm", "raw"], labels)


def test_ceiling_table_leaves_out_rows_without_the_ceiling_and_lower_is_better_rows() -> None:
    latency = Row("fan-out", "300 listeners, 1 proc", "round p50 ms", False)
    latency.add("raw", 1.0)
    latency.add("wsm", 2.0)
    without = _row(wsm=[90.0])
    labels = {"raw": "raw websockets", "wsm": "wsmanager"}
    assert ceiling_text([latency, without], ["wsm", "raw"], labels).count("\n") == 0


def test_without_bare_the_table_has_no_ratio_to_it() -> None:
    row = _row(raw=[100.0], wsm=[90.0])
    labels = {"raw": "raw websockets", "wsm": "wsmanager"}
    header, _, line = table_text([row], ["wsm", "raw"], labels).splitlines()
    assert "/bare" not in header and header.split()[-2:] == ["raw", "websockets"]
    assert line.split()[-2:] == ["90.0", "100"]
    assert "| 90.0 | 100 |" in table_markdown([row], ["wsm", "raw"], labels)
