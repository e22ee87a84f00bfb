"""The suite's own support code that its trust rests on: ports handed out once on the
whole machine and the server kinds each module runs on (tests/servers.py), and the
pytest-xdist groups and their order (tests/conftest.py)."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.conftest import long_modules_first, pytest_runtest_makereport, xdist_group

ROOT = Path(__file__).resolve().parent.parent

HAND_OUT = """
import sys
from tests.servers import free_port
print(" ".join(str(free_port()) for _ in range(int(sys.argv[1]))), flush=True)
sys.stdin.read()  # keep the reservations until the parent has read them
"""


def test_free_ports_are_never_handed_out_twice_on_the_machine() -> None:
    """Two other processes and this one, each taking ports at the same time: no port twice."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", HAND_OUT, "200"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        mine = [servers.free_port() for _ in range(200)]
        theirs = [int(port) for child in children for port in child.stdout.readline().split()]  # type: ignore[union-attr]
    finally:
        for child in children:
            child.communicate("")
    taken = mine + theirs
    assert len(taken) == 600 and len(set(taken)) == 600


def test_free_ports_lie_outside_the_ephemeral_range_and_nothing_listens_there() -> None:
    """Below the kernel's range for outgoing connections (so none takes it first), and free."""
    port = servers.free_port()
    ports = servers._port_range()
    assert port in ports or not ports
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing holds it


def test_a_module_is_one_group_split_by_server_kind() -> None:
    """Tests of one module and one server kind share a worker; other parameters do not split."""
    assert xdist_group("tests/test_limits.py::test_bucket_refills_at_its_rate") == "tests/test_limits.py"
    assert xdist_group("tests/test_rpc.py::TestX::test_y[3-4]") == "tests/test_rpc.py"
    e2e = "tests/e2e/test_servers.py"
    assert xdist_group(f"{e2e}::test_x[daphne]") == f"{e2e}:daphne"
    assert xdist_group(f"{e2e}::test_x[uvicorn-1009]") == f"{e2e}:uvicorn"
    assert xdist_group(f"{e2e}::test_x[uvicorn-sansio-1009]") == f"{e2e}:uvicorn-sansio"
    assert xdist_group(f"{e2e}::test_x[deflate-uvicorn-wsproto]") == f"{e2e}:uvicorn-wsproto"
    assert xdist_group(f"{e2e}::test_x[granian]@mine") == "mine"  # an xdist_group mark, where shown


def test_modules_run_on_every_server_and_transport_modules_on_every_uvicorn_implementation() -> None:
    """Without WSMANAGER_TEST_SERVERS: an app-level module on daphne, uvicorn's default,
    hypercorn and granian; a module importing every_implementation on all six kinds."""
    env = {k: v for k, v in os.environ.items() if k != "WSMANAGER_TEST_SERVERS"}
    transport, app = "tests/e2e/test_stalled_readers.py", "tests/e2e/test_users_e2e.py"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", transport, app],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    kinds: dict[str, Counter[str]] = {transport: Counter(), app: Counter()}
    for line in run.stdout.splitlines():
        module = line.partition("::")[0]
        if module in kinds:
            kinds[module][xdist_group(line).partition(":")[2]] += 1
    assert set(kinds[transport]) == set(servers.SERVER_KINDS)
    assert set(kinds[app]) == {"daphne", "uvicorn-sansio", "hypercorn", "granian"}


def test_named_servers_are_exactly_the_kinds_every_module_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSMANAGER_TEST_SERVERS", raising=False)
    assert servers.app_kinds() == ("daphne", "uvicorn-sansio", "hypercorn", "granian")
    monkeypatch.setenv("WSMANAGER_TEST_SERVERS", "uvicorn-wsproto, daphne")
    assert servers.app_kinds() == ("uvicorn-wsproto", "daphne")


class _Item:
    """What long_modules_first reads of a pytest item: its node id, marks and function."""

    def __init__(self, nodeid: str, *marks: str, hypothesis: bool = False) -> None:
        self.nodeid, self.marks = nodeid, marks
        self.obj: Any = type("F", (), {"hypothesis": object()})() if hypothesis else object()

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.marks else None


def test_modules_with_a_long_test_go_first_each_in_its_own_order() -> None:
    items = [
        _Item("tests/test_a.py::test_1"),
        _Item("tests/test_b.py::test_1"),
        _Item("tests/test_b.py::test_2", "redis"),  # one long test makes its whole group long
        _Item("tests/test_b.py::test_3"),
        _Item("tests/test_c.py::test_1", hypothesis=True),
        _Item("tests/e2e/test_d.py::test_1[daphne]", "e2e"),
        _Item("tests/e2e/test_d.py::test_1[granian]"),
        _Item("tests/test_e.py::test_1"),
    ]
    long_modules_first(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items] == [
        "tests/test_b.py::test_1",
        "tests/test_b.py::test_2",
        "tests/test_b.py::test_3",
        "tests/test_c.py::test_1",
        "tests/e2e/test_d.py::test_1[daphne]",
        "tests/e2e/test_d.py::test_1[granian]",  # its module's other group stays with it
        "tests/test_a.py::test_1",
        "tests/test_e.py::test_1",
    ]


def test_exactly_the_transport_modules_run_on_every_uvicorn_implementation() -> None:
    """The modules that import every_implementation are tests.servers.TRANSPORT_MODULES: one
    dropped or added by mistake fails here."""
    importing = set()
    for path in sorted((ROOT / "tests").glob("*/test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else []
            if getattr(node, "module", None) == "tests.servers" and "every_implementation" in names:
                importing.add(path.relative_to(ROOT).as_posix())
    assert importing == set(servers.TRANSPORT_MODULES)


class _Chatty(servers.ServerProcess):
    """A process that writes a server's kinds of lines, then waits to be stopped."""

    kind = "chatty"
    LINES = (
        '127.0.0.1:40000 - - [07/Dec/2026:11:30:00] "WSCONNECTING /ws/chat/a/" - -',
        'INFO:     127.0.0.1:40001 - "WebSocket /ws/chat/a/" [accepted]',
        'INFO:     127.0.0.1:40002 - "GET /api/rooms/a/sockets HTTP/1.1" 200 OK',
        "WARNING wsmanager.connection: socket refused (registry): registry unavailable",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
    )

    def command(self) -> list[str]:
        script = f"import sys, time\nprint(*{list(self.LINES)!r}, sep='\\n', flush=True)\ntime.sleep(60)"
        return [sys.executable, "-c", script]


def test_a_failed_tests_report_shows_each_running_servers_log_without_access_lines() -> None:
    """A server that refuses says why only in its log: a failed test's report carries the
    log's events (warnings, tracebacks) of every server still running, not its access lines."""
    server = _Chatty(port=servers.free_port()).launch()
    try:
        deadline = time.monotonic() + 30
        while len(server.log_text().splitlines()) < len(_Chatty.LINES):
            assert time.monotonic() < deadline, f"the process wrote: {server.log_text()!r}"
            time.sleep(0.02)
        assert server in servers.running_servers()
        failed = pytest.TestReport("t::x", ("t", 1, "x"), {}, "failed", "boom", "call", [])
        passed = pytest.TestReport("t::y", ("t", 1, "y"), {}, "passed", None, "call", [])
        for report in (failed, passed):
            hook = pytest_runtest_makereport(None, None)  # type: ignore[arg-type]
            next(hook)
            with pytest.raises(StopIteration) as done:
                hook.send(report)
            assert done.value.value is report
    finally:
        server.kill()
    [text] = [text for title, text in failed.sections if repr(server) in title]
    assert text.splitlines() == ["[3 access-log lines left out]", *_Chatty.LINES[3:]]
    assert passed.sections == []
    assert server not in servers.running_servers()
