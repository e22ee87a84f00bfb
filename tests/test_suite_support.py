"""The suite's own support code that its trust rests on: ports handed out once on the
whole machine (tests/servers.py) and the pytest-xdist groups (tests/conftest.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests import servers
from tests.conftest import xdist_group

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
