"""Real ASGI server processes for end-to-end tests and the benchmark.

A :class:`ServerProcess` runs one server (daphne, uvicorn with its
``websockets``, ``websockets-sansio`` or ``wsproto`` implementation,
hypercorn or granian) serving
an ASGI app (the demo by default) on a free loopback port, waits until the
app is served (the port listens; hypercorn's and granian's workers log that
they serve), and can be stopped cleanly (SIGTERM, as a supervisor does),
killed (SIGKILL), frozen (SIGSTOP) and thawed (SIGCONT). Its output goes to
a log file whose tail is shown when start-up fails.

hypercorn and granian serve from a worker process that their main process
spawns; each server runs in a session of its own, so that kill, freeze and
thaw reach the workers too (a signal to the process group), while stop
signals the main process only (what systemd's ``KillMode=mixed``, docker
and Kubernetes do), which then stops its workers.

:data:`SERVER_KINDS` names every kind; :func:`server_process` builds one by
name. An end-to-end module runs on every server, uvicorn with its default
implementation (:func:`app_kinds`); a module that tests what differs between
WebSocket implementations (how frames are written, closed, compressed and held
back) runs on uvicorn's other two as well, by importing :func:`every_implementation`.
``WSMANAGER_TEST_SERVERS=daphne,uvicorn`` runs every module on exactly the
kinds it names (:func:`selected_kinds`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest

ROOT = Path(__file__).resolve().parent.parent


#: Ports this process has handed out (never handed out twice).
_handed_out: set[int] = set()
#: One file for the whole machine: each port handed out is one byte of it, locked by the
#: process that handed it out (a POSIX record lock, released by the kernel when that
#: process ends), so two processes (xdist workers, or two runs of the suite) never hand
#: out the same port.
_PORT_LOCKS = Path(tempfile.gettempdir()) / "wsmanager-test-ports.lock"
_port_lock_fd: int | None = None

#: Every server this process launched and has not dropped (see :func:`running_servers`).
_launched: weakref.WeakSet[ServerProcess] = weakref.WeakSet()

#: A line of a server's access log: one per request or handshake, of every kind's format.
_ACCESS_LINE = re.compile(
    r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|WSCONNECTING|WSCONNECT|WSDISCONNECT|WSREJECT) /'
    r"|\bWebSocket /|\[accepted\]|connection (?:open|closed)\b"
)


def _port_range() -> range:
    """Ports below the kernel's ephemeral range (which it takes outgoing connections'
    ports from): no client socket can take one between its hand-out and the server's
    bind. Above the range when too little lies below it."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low - 10_000 >= 2_000:
        return range(10_000, low)
    if 65_535 - high >= 2_000:
        return range(high + 1, 65_536)
    return range(0)  # no room outside it: the kernel's choice


def _reserve(port: int) -> bool:
    """Lock ``port``'s byte of the shared lock file for this process; False: another has it."""
    global _port_lock_fd
    if _port_lock_fd is None:
        _port_lock_fd = os.open(_PORT_LOCKS, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.lockf(_port_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
    except OSError:
        return False
    return True


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on, handed out once on this machine while this
    process lives: never twice in this process, never to another process running
    tests (pytest-xdist's workers, another checkout's suite), and outside the kernel's
    ephemeral range so that no outgoing connection takes it before the server binds it."""
    ports = _port_range()
    for _ in range(1_000):
        if ports:
            port = random.choice(ports)
        else:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
        if port not in _handed_out and _reserve(port) and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found in 1,000 tries")


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class ServerProcess:
    """One server process serving ``app`` (the demo by default). Subclasses give the command."""

    #: The name used in test ids, ``server_process`` and ``WSMANAGER_TEST_SERVERS``.
    kind: ClassVar[str] = ""
    #: A log line that says the app is served, for servers whose main process binds
    #: the port before its worker has loaded the app; None: listening means serving.
    ready_marker: ClassVar[str | None] = None
    #: How many times the marker must appear (once per worker).
    ready_count: ClassVar[int] = 1

    def __init__(
        self,
        port: int | None = None,
        env: dict[str, str] | None = None,
        app: str = "demo_chat.asgi:application",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.app = app
        self.extra_args = extra_args
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")
        # The demo recovers dropped sockets for 60 s; tests of other behaviour
        # (a drop announced at once) run it without, recovery tests turn it on.
        self.env.setdefault("WSMANAGER_RECOVERY_WINDOW", "0")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"{self.kind}-", suffix=".log")[1])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.app} on port {self.port}>"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        """Launch the process and wait until it serves (:meth:`launch`, then :meth:`ready`)."""
        return self.launch().ready()

    def launch(self) -> Self:
        """Start the process without waiting for it to serve: several servers launched one
        after another then awaited with :meth:`ready` load their apps at the same time."""
        _launched.add(self)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def ready(self) -> Self:
        """Wait until the launched process serves; kill it and raise, with its log's tail, if
        it exits or does not serve within 30 s."""
        try:
            wait_for_port(self.port, 30.0, self.proc)
            self._wait_for_marker(30.0)
        except RuntimeError as exc:
            self.kill()
            raise RuntimeError(f"{exc}\n--- {self.kind} log ---\n{self.log_tail()}") from None
        return self

    def _wait_for_marker(self, timeout: float) -> None:
        if self.ready_marker is None:
            return
        deadline = time.monotonic() + timeout
        while self.log_text().count(self.ready_marker) < self.ready_count:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before serving")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {self.ready_marker!r} in the log after {timeout}s")
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_events(self, lines: int = 40) -> str:
        """The log's last ``lines`` lines that are not access-log lines (one per request or
        handshake, which would bury a refusal's warning or a traceback), with how many of
        those were left out."""
        events, skipped = [], 0
        for line in self.log_text().splitlines():
            if _ACCESS_LINE.search(line):
                skipped += 1
            else:
                events.append(line)
        head = f"[{skipped} access-log lines left out]"
        return "\n".join([head, *events[-lines:]])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The main process and every process it started (hypercorn's and granian's workers)."""
        if not self.running:
            return []
        assert self.proc is not None
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            todo += [int(child) for child in children]
        return found

    def serving_pid(self) -> int:
        """The process that runs the app: of the main process's descendants (workers, and
        helpers such as multiprocessing's resource tracker) the largest in memory, else the
        main process itself."""
        pids = self.pids()
        if not pids:
            raise RuntimeError(f"{self} is not running")
        return max(pids[1:], key=_rss_kib, default=pids[0])

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def terminate(self) -> None:
        """SIGTERM to the main process, without waiting (see :meth:`stop`)."""
        if self.running:
            assert self.proc is not None
            self._signal_group(signal.SIGCONT)
            self.proc.terminate()

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the main process to exit; its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the main process and wait (every server shuts down cleanly); SIGKILL if it hangs."""
        if not self.running:
            return
        self.terminate()
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap_group()

    def _reap_group(self) -> None:
        """SIGKILL whatever the main process left behind in its session (a lingering worker)."""
        if self.proc is not None:
            self._signal_group(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL to the main process and its workers: they die without any clean-up."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait()

    def freeze(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_group(signal.SIGCONT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: daphne's handshake timeout for modules that open hundreds of sockets at once: as long
#: as their clients wait (``open_timeout=60``). daphne refuses a handshake still open
#: after ``--websocket_connect_timeout`` (5 s by default) with a bare 403, which on a
#: loaded machine reads as a refusal; the client's own timeout says what happened.
DAPHNE_BURST_ARGS = ("--websocket_connect_timeout", "60")


class DaphneProcess(ServerProcess):
    """``daphne -b 127.0.0.1 -p PORT [extra_args] APP`` (Twisted and autobahn)."""

    kind = "daphne"

    def command(self) -> list[str]:
        port = str(self.port)
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", port, *self.extra_args, self.app]


class UvicornProcess(ServerProcess):
    """``uvicorn --ws websockets|wsproto`` (one process, uvloop and httptools when installed)."""

    kind = "uvicorn"
    ws_impl: ClassVar[str] = "websockets"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ws",
            self.ws_impl,
            "--no-access-log",
            *self.extra_args,
            self.app,
        ]


class UvicornWsprotoProcess(UvicornProcess):
    kind = "uvicorn-wsproto"
    ws_impl = "wsproto"


class UvicornSansioProcess(UvicornProcess):
    """uvicorn's default implementation (``--ws auto`` with ``websockets`` installed)."""

    kind = "uvicorn-sansio"
    ws_impl = "websockets-sansio"


class HypercornProcess(ServerProcess):
    """``hypercorn -b 127.0.0.1:PORT APP``: a main process and one spawned worker."""

    kind = "hypercorn"
    ready_marker = "Running on http://"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{self.port}", *self.extra_args, self.app]


class GranianProcess(ServerProcess):
    """``granian --interface asgi``: a Rust main process and one worker process."""

    kind = "granian"
    ready_marker = "Started worker-"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
            self.app,
        ]


class GunicornUvicornProcess(ServerProcess):
    """``gunicorn -k uvicorn_worker.UvicornWorker -w 2``: a gunicorn master and two uvicorn workers.

    Not one of :data:`SERVER_KINDS` (the suite runs uvicorn alone); tests of
    gunicorn's own behaviour use it directly.
    """

    kind = "gunicorn"
    ready_marker = "Application startup complete"
    ready_count = 2

    def command(self) -> list[str]:
        bind = f"127.0.0.1:{self.port}"
        gunicorn = [sys.executable, "-m", "gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2"]
        return [*gunicorn, "-b", bind, *self.extra_args, self.app]


class RawWebsocketsProcess(ServerProcess):
    """The bench's ceiling: ``python -m bench.apps.raw`` (the ``websockets`` library alone,
    no ASGI; ``app`` is ignored). Not one of :data:`SERVER_KINDS`: it serves no demo."""

    kind = "raw-websockets"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.apps.raw", "--port", str(self.port)]


SERVER_CLASSES: dict[str, type[ServerProcess]] = {
    cls.kind: cls
    for cls in (
        DaphneProcess,
        UvicornProcess,
        UvicornSansioProcess,
        UvicornWsprotoProcess,
        HypercornProcess,
        GranianProcess,
    )
}
SERVER_KINDS: tuple[str, ...] = tuple(SERVER_CLASSES)


def selected_kinds() -> tuple[str, ...]:
    """The kinds named in ``WSMANAGER_TEST_SERVERS`` (comma-separated), else all of them."""
    wanted = os.environ.get("WSMANAGER_TEST_SERVERS", "").strip()
    if not wanted:
        return SERVER_KINDS
    kinds = tuple(k.strip() for k in wanted.split(",") if k.strip())
    unknown = [k for k in kinds if k not in SERVER_CLASSES]
    if unknown:
        raise ValueError(f"WSMANAGER_TEST_SERVERS names unknown servers {unknown}; known: {SERVER_KINDS}")
    return kinds


#: uvicorn's implementations besides its default (``websockets-sansio``, kind
#: ``uvicorn-sansio``): they differ from it in the transport only (wsmanager.servers'
#: adapters: the direct writer, the backlog probe, close frames, compression).
OTHER_IMPLEMENTATIONS: tuple[str, ...] = ("uvicorn", "uvicorn-wsproto")


#: The end-to-end modules that run on every kind, uvicorn's three implementations
#: included, by importing :func:`every_implementation` (tests/test_suite_support.py
#: checks that exactly these do): what they test goes through the code that differs
#: between implementations (frames written, closes and the codes a lost connection is
#: reported with, which recovery reads, compression, a slow reader's backlog).
#: tests/browser/test_close_on_purpose.py runs on every kind through a fixture of its own.
TRANSPORT_MODULES: tuple[str, ...] = (
    "tests/e2e/test_client_refusals.py",
    "tests/e2e/test_close_on_purpose.py",
    "tests/e2e/test_compression_e2e.py",
    "tests/e2e/test_demo_chat.py",
    "tests/e2e/test_hostile_input.py",
    "tests/e2e/test_msgpack_e2e.py",
    "tests/e2e/test_recovery_e2e.py",
    "tests/e2e/test_refusals_e2e.py",
    "tests/e2e/test_servers.py",
    "tests/e2e/test_stalled_readers.py",
    "tests/e2e/test_streams_e2e.py",
)


def app_kinds() -> tuple[str, ...]:
    """The kinds an end-to-end module runs on by default: daphne, uvicorn (its default
    implementation), hypercorn and granian; with ``WSMANAGER_TEST_SERVERS`` set, the kinds
    it names. What a handler, the registry, presence or recovery do does not depend on
    which of uvicorn's implementations carries the frames: the modules that test the
    transport run on all three (:func:`every_implementation`)."""
    if os.environ.get("WSMANAGER_TEST_SERVERS", "").strip():
        return selected_kinds()
    return tuple(kind for kind in SERVER_KINDS if kind not in OTHER_IMPLEMENTATIONS)


@pytest.fixture(name="server_kind", scope="module", params=selected_kinds())
def every_implementation(request: pytest.FixtureRequest) -> str:
    """``server_kind`` over every kind, uvicorn's three implementations included: a module
    that tests the transport imports it (``from tests.servers import every_implementation``),
    which overrides the conftest's ``server_kind`` (:func:`app_kinds`) for that module."""
    kind: str = request.param
    return kind


def server_process(kind: str, **kwargs: Any) -> ServerProcess:
    """A (not yet started) process of server ``kind``; kwargs as for :class:`ServerProcess`."""
    if kind == RawWebsocketsProcess.kind:
        return RawWebsocketsProcess(**kwargs)
    return SERVER_CLASSES[kind](**kwargs)


#: The servers :func:`shared_server` started in this process, by what they serve.
_SHARED: dict[tuple[str, str, tuple[tuple[str, str], ...]], ServerProcess] = {}


def shared_server(
    kind: str, app: str = "demo_chat.asgi:application", env: dict[str, str] | None = None
) -> ServerProcess:
    """A running server of ``kind`` serving ``app`` with ``env``, one per process (an xdist
    worker) for every module that asks for the same: started on first use, stopped by
    :func:`stop_shared_servers` at the end of the session. For modules whose tests use rooms,
    users and keys of their own and never stop, freeze or count the whole server; a module
    that does starts its own (:func:`server_process`)."""
    key = (kind, app, tuple(sorted((env or {}).items())))
    server = _SHARED.get(key)
    if server is None or not server.running:
        if server is not None:  # it died: what it left behind in its session goes too
            server.kill()
        server = _SHARED[key] = server_process(kind, app=app, env=env).start()
    return server


def running_servers() -> list[ServerProcess]:
    """The servers this process launched that still run (what a failed test's report shows)."""
    return sorted((s for s in _launched if s.running), key=lambda s: s.port)


def stop_shared_servers() -> None:
    while _SHARED:
        _SHARED.popitem()[1].stop()
