"""Measurements, their medians and ratios, and the table that shows them.

A :class:`Row` is one metric of one case (``echo`` / ``10 conns`` /
``msg/s``) with the values every system gave in each repeat. The table shows
each system's median and its ratio to bare Channels (``sio/bare``,
``wsm/bare``), and checks wsmanager's ratio against the team's target where
there is one. Metrics marked ↑ are better higher, ↓ better lower.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "Row",
    "machine",
    "on_off_markdown",
    "on_off_text",
    "percentile",
    "table_markdown",
    "table_text",
    "to_json",
]

PACKAGES = (
    "django",
    "channels",
    "channels_redis",
    "daphne",
    "twisted",
    "autobahn",
    "redis",
    "python-socketio",
    "python-engineio",
    "websockets",
    "wsmanager",
)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Row:
    """One metric of one case: each system's value in each repeat."""

    scenario: str
    case: str
    metric: str
    higher_is_better: bool
    #: wsmanager/bare ratio the team aims for (>= when higher is better, else <=).
    target: float | None = None
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, system: str, value: float) -> None:
        self.values.setdefault(system, []).append(value)

    def median(self, system: str) -> float:
        values = [v for v in self.values.get(system, []) if not math.isnan(v)]
        return statistics.median(values) if values else math.nan

    def ratio(self, system: str, base: str = "bare") -> float:
        base_value = self.median(base)
        if not base_value or math.isnan(base_value):
            return math.nan
        return self.median(system) / base_value

    def ratio_range(self, system: str, base: str = "bare") -> tuple[float, float]:
        """Lowest and highest ratio of one repeat (the runs of a repeat are close in time)."""
        ratios = self.pair_ratios(system, base)
        return (min(ratios), max(ratios)) if ratios else (math.nan, math.nan)

    def pair_ratios(self, system: str, base: str) -> list[float]:
        """``system`` / ``base`` of each repeat (the two ran next to each other in it)."""
        pairs = zip(self.values.get(system, []), self.values.get(base, []), strict=False)
        return [v / b for v, b in pairs if b and not math.isnan(v) and not math.isnan(b)]

    def verdict(self) -> str:
        """'ok', 'MISS' or '' (no target, or no wsmanager value)."""
        if self.target is None:
            return ""
        ratio = self.ratio("wsm")
        if math.isnan(ratio):
            return ""
        met = ratio >= self.target if self.higher_is_better else ratio <= self.target
        return "ok" if met else "MISS"

    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<='}{self.target:g}"


def _commit() -> str:
    """The repository's commit (``-dirty`` with uncommitted changes), or '' outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and package versions."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "")
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "wsmanager commit": _commit(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _cells(row: Row, systems: list[str], labels: dict[str, str]) -> list[str]:
    arrow = "↑" if row.higher_is_better else "↓"
    cells = [row.scenario, row.case, f"{row.metric} {arrow}"]
    cells += [_fmt(row.median(s)) for s in systems]
    if "bare" not in systems:  # --no-bare: no ratio to it
        return cells
    cells += [_ratio(row.ratio(s)) for s in systems if s != "bare"]
    low, high = row.ratio_range("wsm")
    cells += ["-" if math.isnan(low) else f"{low:.2f}-{high:.2f}", row.target_text(), row.verdict()]
    return cells


def _header(systems: list[str], labels: dict[str, str]) -> list[str]:
    values = ["scenario", "case", "metric", *[labels[s] for s in systems]]
    if "bare" not in systems:
        return values
    ratios = [f"{s}/bare" for s in systems if s != "bare"]
    return [*values, *ratios, "wsm/bare per repeat", "target", ""]


def _fixed_width(lines: list[list[str]], left: frozenset[int], rule: bool = False) -> str:
    """Columns padded to their widest cell, those in ``left`` flush left, the others
    right; ``rule``: a line of dashes under the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        pairs = enumerate(zip(line, widths, strict=True))
        out.append("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in pairs))
        if rule and n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _markdown(lines: list[list[str]], left: frozenset[int]) -> str:
    """A Markdown table of a header and rows; the columns in ``left`` aligned left."""
    align = ["---" if i in left else "---:" for i in range(len(lines[0]))]
    return "\n".join("| " + " | ".join(line) + " |" for line in [lines[0], align, *lines[1:]])


_NAMES = frozenset({0, 1, 2})  # scenario, case, metric


def table_text(rows: list[Row], systems: list[str], labels: dict[str, str]) -> str:
    """A fixed-width table for the terminal."""
    lines = [_header(systems, labels)] + [_cells(r, systems, labels) for r in rows]
    return _fixed_width(lines, _NAMES, rule=True)


def table_markdown(rows: list[Row], systems: list[str], labels: dict[str, str]) -> str:
    """The same table in Markdown."""
    header = _header(systems, labels)
    if "bare" in systems:
        header[-1] = "met"
    return _markdown([header] + [_cells(r, systems, labels) for r in rows], _NAMES)


def _on_off_lines(rows: list[Row], pairs: list[tuple[str, str]], labels: dict[str, str]) -> list[list[str]]:
    """Per row and (off, on) pair of systems: both medians, on/off, and its range over the repeats."""
    lines = [["scenario", "case", "metric", "off", "on", "on/off", "per repeat", "system"]]
    for row in rows:
        for off, on in pairs:
            low, high = row.ratio_range(on, off)
            spread = "-" if math.isnan(low) else f"{low:.2f}-{high:.2f}"
            arrow = "↑" if row.higher_is_better else "↓"
            lines.append(
                [
                    row.scenario,
                    row.case,
                    f"{row.metric} {arrow}",
                    _fmt(row.median(off)),
                    _fmt(row.median(on)),
                    _ratio(row.ratio(on, off)),
                    spread,
                    labels[off],
                ]
            )
    return lines


def on_off_text(rows: list[Row], pairs: list[tuple[str, str]], labels: dict[str, str]) -> str:
    """The metrics on/off comparison (``--metrics``) for the terminal."""
    return _fixed_width(_on_off_lines(rows, pairs, labels), _NAMES)


def on_off_markdown(rows: list[Row], pairs: list[tuple[str, str]], labels: dict[str, str]) -> str:
    """The same comparison in Markdown."""
    return _markdown(_on_off_lines(rows, pairs, labels), _NAMES | {7})


CEILING_TARGET = 0.95  # issue 11: fan-out on the fastest server against the raw ceiling


def _ceiling_lines(rows: list[Row], systems: list[str], labels: dict[str, str], base: str) -> list[list[str]]:
    """Per row the ceiling ran in, and per other system: both medians, the median of the
    ratios of one repeat, their quartiles, and how many reach the target."""
    head = [
        "scenario",
        "case",
        "metric",
        labels[base],
        "system",
        "value",
        "/ceiling",
        "per repeat (quartiles)",
    ]
    lines = [[*head, f">= {CEILING_TARGET:g}"]]
    for row in rows:
        if not row.higher_is_better or math.isnan(row.median(base)):
            continue
        for system in systems:
            ratios = row.pair_ratios(system, base)
            if system == base or not ratios:
                continue
            quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            reached = sum(r >= CEILING_TARGET for r in ratios)
            lines.append(
                [
                    row.scenario,
                    row.case,
                    f"{row.metric} ↑",
                    _fmt(row.median(base)),
                    labels[system],
                    _fmt(row.median(system)),
                    _ratio(statistics.median(ratios)),
                    f"{quartiles[0]:.2f}-{quartiles[2]:.2f}",
                    f"{reached} of {len(ratios)}",
                ]
            )
    return lines


def ceiling_text(rows: list[Row], systems: list[str], labels: dict[str, str], base: str = "raw") -> str:
    """Every system against the raw ``websockets`` ceiling, repeat by repeat, for the terminal."""
    return _fixed_width(_ceiling_lines(rows, systems, labels, base), _NAMES | {4})


def ceiling_markdown(rows: list[Row], systems: list[str], labels: dict[str, str], base: str = "raw") -> str:
    """The same comparison in Markdown."""
    return _markdown(_ceiling_lines(rows, systems, labels, base), _NAMES | {4})


def to_json(rows: list[Row], info: dict[str, Any], command: str) -> str:
    return json.dumps({"command": command, "machine": info, "rows": [asdict(r) for r in rows]}, indent=1)
