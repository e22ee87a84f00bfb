"""The runner: start the servers, run every case on every system interleaved, report.

For each case, the sockets of all systems are opened first; then each repeat
runs bare, socket.io and wsmanager in turn (the order rotates per repeat), so
that a slow minute of the machine hurts every system alike. The table shows
medians over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.servers import SERVER_KINDS

from .profiling import Recorder, summary
from .results import (
    Row,
    ceiling_markdown,
    ceiling_text,
    machine,
    on_off_markdown,
    on_off_text,
    table_markdown,
    table_text,
    to_json,
)
from .scenarios import FULL, QUICK, BenchError, Case, Config, Connections, Direct, Echo, Fanout, Rpc
from .servers import Servers, cpu_ticks, new_prefix, raise_fd_limit, redis_cleanup, redis_problem
from .systems import SYSTEMS, DemoChat, System, WsManager, WsManagerMetrics, sio_installed

__all__ = ["main"]

SCENARIOS = ("echo", "rpc", "fanout", "send-by-id", "connections")
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: The row ``--metrics`` adds to every case: server CPU time per message or delivery.
CPU_PER_UNIT = "server CPU µs/unit"


def log(text: str) -> None:
    print(text, flush=True)


def _load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every number."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def build_cases(
    config: Config, names: Sequence[str], modes: Sequence[str], redis_url: str, prefix: str
) -> list[Case]:
    cases: list[Case] = []
    if "echo" in names:
        cases += [Echo(n, config) for n in config.echo_conns]
    if "rpc" in names:
        cases.append(Rpc(config.rpc_conns, config))
    for mode in modes:
        if "fanout" in names:
            cases += [Fanout(n, mode, config) for n in config.fanout_sizes]
        if "send-by-id" in names:
            cases.append(Direct(mode, config))
    for mode in modes:
        if "connections" in names:
            cases.append(Connections(mode, config, redis_url, prefix))
    return cases


def _describe(result: dict[str, float]) -> str:
    text = "  ".join(f"{k} {v:,.2f}" for k, v in result.items() if not k.startswith("_"))
    cpu = f"client CPU {result.get('_client_cpu', math.nan):.0%}"
    if "_server_cpu" in result:
        cpu += f", servers {result['_server_cpu']:.0%}"
    return f"{text}  ({cpu})"


async def _run_once(
    case: Case, system: System, state: Any, servers: Servers, profile: Path | None
) -> dict[str, float]:
    """One run, with the CPU share of the client (this process) and of the servers.

    A side near 100% of its core is what limits the numbers: the server
    should be, the client should not.
    """
    recorder = None
    if profile is not None:
        recorder = Recorder(servers.pids(system.key)[0], profile / f"{system.key}.raw")
        recorder.start()
        await asyncio.sleep(1.0)  # let py-spy attach
    pids = servers.pids(system.key) if system.key in servers.procs else []
    ticks = sum(cpu_ticks(pid) for pid in pids)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = await case.run(system, state, servers)
    finally:
        if recorder is not None:
            recorder.stop()
    wall = time.perf_counter() - wall
    result["_client_cpu"] = (time.process_time() - cpu) / wall
    if pids:
        result["_server_cpu"] = (sum(cpu_ticks(pid) for pid in pids) - ticks) / CLOCK_TICKS / wall
        if result.get("_messages"):  # CPU per message or delivery: less sensitive to a busy machine
            result[CPU_PER_UNIT] = result["_server_cpu"] * wall / result["_messages"] * 1e6
    if recorder is not None:
        log(f"  {system.label} profile:")
        log(summary(recorder.output, int(result["_messages"]), recorder.rate))
    return result


async def run_case(
    case: Case,
    systems: list[System],
    servers: Servers,
    repeat: int,
    profile: Path | None = None,
) -> list[str]:
    """Open, run (repeats x systems, interleaved), close; the errors met."""
    errors: list[str] = []
    states: dict[str, Any] = {}
    failed: set[str] = set()
    log(f"{case.scenario}: {case.label}")
    for system in systems:
        try:
            states[system.key] = await case.open(system, servers)
        except (BenchError, TimeoutError, OSError, AssertionError) as exc:
            errors.append(f"{case.scenario} {case.label} {system.label}: opening failed: {exc!r}")
            log(f"  {system.label}: opening failed: {exc!r}")
            failed.add(system.key)
    try:
        for rep in range(repeat):
            shift = rep % len(systems)
            for system in systems[shift:] + systems[:shift]:
                result: dict[str, float] = {}
                if system.key not in failed:
                    try:
                        result = await _run_once(case, system, states.get(system.key), servers, profile)
                    except (BenchError, TimeoutError, OSError, AssertionError) as exc:
                        errors.append(f"{case.scenario} {case.label} {system.label}: {exc!r}")
                        log(f"  {system.label}: FAILED: {exc!r}")
                        failed.add(system.key)
                for row in case.rows:
                    row.add(system.key, result.get(row.metric, math.nan))
                if result:
                    log(f"  [{rep + 1}/{repeat}] {system.label:10} {_describe(result)}")
    finally:
        for system in systems:
            if system.key in states:
                await case.close(states[system.key], servers)
    return errors


async def run_all(
    cases: list[Case], systems: list[System], redis_url: str, prefix: str, repeat: int
) -> list[str]:
    errors: list[str] = []
    groups = {
        "memory": [c for c in cases if c.mode == "memory" and not isinstance(c, Connections)],
        "redis": [c for c in cases if c.mode == "redis" and not isinstance(c, Connections)],
    }
    for mode, group in groups.items():
        if not group:
            continue
        count = 1 if mode == "memory" else 2
        # The raw websockets ceiling is one process with no shared rooms: memory cases only.
        in_mode = [s for s in systems if mode == "memory" or s.key != "raw"]
        layer = redis_url if mode == "redis" else ""
        mode_apps: dict[str, str | tuple[str, str] | tuple[str, str, dict[str, str]]] = {
            s.key: (s.app, s.server, s.env(layer, prefix)) for s in in_mode
        }
        servers = Servers(mode_apps, count=count, redis_url=layer, prefix=prefix)
        log(f"-- starting {count * len(mode_apps)} server process(es), {mode} --")
        await asyncio.to_thread(servers.start)
        try:
            for system in in_mode:
                for port in servers.ports(system.key):
                    await system.preflight(port)
            for case in group:
                # The ceiling has no send-by-id view.
                runs = [
                    s
                    for s in in_mode
                    if not (isinstance(case, Direct) and s.key == "raw")
                    and (s.scenarios is None or case.scenario in s.scenarios)
                ]
                errors += await run_case(case, runs, servers, repeat)
                servers.check_alive()
        finally:
            await asyncio.to_thread(servers.stop, bool(errors))
    for case in cases:
        if isinstance(case, Connections):
            runs = [s for s in systems if s.scenarios is None or case.scenario in s.scenarios]
            errors += await run_case(case, runs, Servers({}), repeat)
    return errors


async def run_profile(config: Config, systems: list[System], out: Path) -> None:
    """Echo and in-memory fan-out with py-spy attached to each server (numbers are not comparable)."""
    if config.repeat > 1:  # full sizes: longer windows, for more samples
        config = replace(config, seconds=max(config.seconds, 4.0), rounds=max(config.rounds, 60))
    cases: list[Case] = [
        Echo(config.echo_conns[-1], config),
        Fanout(config.fanout_sizes[-1], "memory", config),
    ]
    servers = Servers({s.key: (s.app, s.server) for s in systems})
    await asyncio.to_thread(servers.start)
    try:
        for case in cases:
            folder = out / f"{case.scenario}-{case.label.split(',')[0].replace(' ', '')}"
            folder.mkdir(parents=True, exist_ok=True)
            await run_case(case, systems, servers, 1, profile=folder)
            log(f"  raw stacks in {folder}/")
    finally:
        await asyncio.to_thread(servers.stop)


def report(path: Path) -> int:
    """Print the text and Markdown tables of a saved run."""
    saved = json.loads(path.read_text())
    rows = [Row(**row) for row in saved["rows"]]
    keys = [key for key in ("bare", "sio", "wsm") if any(key in row.values for row in rows)]
    labels = {s.key: s.label for s in SYSTEMS.values()}
    log(saved["command"])
    log(table_text(rows, keys, labels))
    log("")
    log(table_markdown(rows, keys, labels))
    return 0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="bare Channels vs python-socketio vs wsmanager on real server processes",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only this (repeatable)")
    parser.add_argument("--repeat", type=int, help="runs per system and case (median reported)")
    parser.add_argument(
        "--seconds", type=float, help="measured window of each case (fan-out: rounds until it is filled)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="fan-out: at least this many measured rounds per repeat, however long (default 20)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
        help=f"Redis for the multi-process cases (default {DEFAULT_REDIS}); 'none' skips them",
    )
    parser.add_argument(
        "--connections", type=int, help="connections: sockets opened to each fresh server (default 5000)"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="add the demo's chat on each --server (fan-out and connections only; its rate limit "
        "from BENCH_DEMO_RATE_LIMIT: off by default, 'default' keeps the demo's)",
    )
    parser.add_argument("--no-sio", action="store_true", help="leave python-socketio out")
    parser.add_argument(
        "--no-bare", action="store_true", help="leave bare Channels out (then no ratio to it is reported)"
    )
    parser.add_argument(
        "--no-raw", action="store_true", help="leave out the raw websockets ceiling (bench/apps/raw.py)"
    )
    parser.add_argument(
        "--server",
        default="daphne",
        help="comma-separated servers to run wsmanager on, one column each: "
        f"{','.join(SERVER_KINDS)} (default daphne; bare Channels and socket.io stay on daphne)",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="run each wsmanager system twice, interleaved: as is and with Prometheus metrics "
        "installed (bench/apps/wsm_metrics.py); adds a server CPU row and an on/off table",
    )
    parser.add_argument("--json", type=Path, help=f"write results here (default {RESULTS}/latest.json)")
    parser.add_argument("--markdown", type=Path, help=f"write the table here (default {RESULTS}/latest.md)")
    parser.add_argument("--report", type=Path, help="only print the table of a results JSON written before")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the table: py-spy profiles of echo and fan-out per server",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.report:
        return report(args.report)
    command = " ".join(["python -m bench", shlex.join(sys.argv[1:] if argv is None else argv)]).strip()
    config = QUICK if args.quick else FULL
    if args.repeat:
        config = replace(config, repeat=args.repeat)
    if args.seconds:
        config = replace(config, seconds=args.seconds)
    if args.rounds:
        config = replace(config, rounds=args.rounds)
    if args.connections:
        config = replace(config, connections=args.connections)
    limit = raise_fd_limit()
    notes: list[str] = []
    kinds = [k.strip() for k in args.server.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in SERVER_KINDS]
    if unknown or not kinds:
        log(f"--server: unknown {unknown or 'empty list'}; known: {', '.join(SERVER_KINDS)}")
        return 2
    wsm: list[System] = [SYSTEMS["wsm"] if kind == "daphne" else WsManager(kind) for kind in kinds]
    if args.metrics:  # each wsmanager system twice, metrics off and on, interleaved in every repeat
        wsm = [
            twin for kind, plain in zip(kinds, wsm, strict=True) for twin in (plain, WsManagerMetrics(kind))
        ]
        notes.append("each wsmanager column also ran with Prometheus metrics installed (--metrics)")
    systems = [*([] if args.no_bare else [SYSTEMS["bare"]]), SYSTEMS["sio"], *wsm]
    if args.demo:
        systems += [DemoChat(kind) for kind in kinds]
    if not args.no_raw:
        systems.append(SYSTEMS["raw"])
    if args.no_sio or not sio_installed():
        systems.remove(SYSTEMS["sio"])
        if not args.no_sio:
            notes.append("socket.io skipped: python-socketio is not installed (pip install -e '.[bench]')")
    redis_url = "" if args.redis_url.lower() == "none" else args.redis_url
    problem = redis_problem(redis_url) if redis_url else "Redis cases not requested"
    if problem:
        notes.append(f"Redis cases skipped: {problem}")
        redis_url = ""
    modes = ["memory", "redis"] if redis_url else ["memory"]
    prefix = new_prefix()
    info = machine()
    log(f"machine: {info['cores']} cores ({info['cpu']}), Python {info['python']}, {info['platform']}")
    log(f"wsmanager commit: {info['wsmanager commit'] or 'unknown'}")
    log("packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()))
    log(f"open files limit: {limit}; run prefix: {prefix}; load average {_load()}")
    for note in notes:
        log(f"note: {note}")
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    if args.profile:
        try:
            asyncio.run(run_profile(config, systems, RESULTS / f"profile-{prefix}"))
        finally:
            if redis_url:
                redis_cleanup(redis_url, prefix)
        return 0
    cases = build_cases(config, args.scenario or SCENARIOS, modes, redis_url, prefix)
    if args.metrics:
        for case in cases:
            case.rows.append(case.row(CPU_PER_UNIT, False))
    try:
        errors = asyncio.run(run_all(cases, systems, redis_url, prefix, config.repeat))
    finally:
        if redis_url:
            redis_cleanup(redis_url, prefix)
    rows: list[Row] = [row for case in cases for row in case.rows]
    notes += [note for case in cases for note in case.notes]
    keys = [s.key for s in systems]
    labels = {s.key: s.label for s in systems}
    log("")
    log(
        f"{command}  ({time.monotonic() - started:.0f} s, median of {config.repeat}; "
        f"load average now {_load()})"
    )
    log(table_text(rows, keys, labels))
    for note in notes:
        log(f"note: {note}")
    ceiling = "raw" in labels and len(labels) > 1
    if ceiling:
        log("")
        log("against the raw websockets ceiling (the ratio of each repeat's pair, run next to each other):")
        log(ceiling_text(rows, keys, labels))
    pairs = [(s.key, f"{s.key}-metrics") for s in systems if f"{s.key}-metrics" in labels]
    if pairs:
        log("")
        log("metrics on / off (median of each, their ratio, and the lowest and highest ratio of one repeat):")
        log(on_off_text(rows, pairs, labels))
    json_path = args.json or RESULTS / "latest.json"
    json_path.write_text(to_json(rows, info, command) + "\n")
    md_path = args.markdown or RESULTS / "latest.md"
    notes_md = "".join(f"\n- {note}" for note in notes)
    on_off = f"\n{on_off_markdown(rows, pairs, labels)}\n" if pairs else ""
    on_off += f"\n{ceiling_markdown(rows, keys, labels)}\n" if ceiling else ""
    md_path.write_text(f"`{command}`\n\n{table_markdown(rows, keys, labels)}\n{notes_md}\n{on_off}")
    log(f"results: {json_path}, {md_path}")
    if errors:
        log(f"{len(errors)} error(s):")
        for error in errors:
            log(f"  {error}")
        return 1
    return 0
