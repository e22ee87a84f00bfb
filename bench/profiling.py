"""Sampling profiles of the servers with py-spy, summarised per message.

:class:`Recorder` attaches ``py-spy record`` (raw collapsed stacks, no line
numbers, ``--nonblocking`` so the server is not paused) to a daphne process
for the length of one run. :func:`summary` turns the stacks into CPU
microseconds per message: by function (self and inclusive) and by package.
Idle threads are not sampled, so the numbers are CPU time, all threads
included (the sync thread of ``sync_to_async`` too).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

__all__ = ["Recorder", "pyspy_path", "summary"]


#: Packages whose functions are listed inclusively (the code under comparison).
LIBRARIES = frozenset({"wsmanager", "channels", "channels_redis", "socketio", "engineio", "asgiref", "bench"})


def pyspy_path() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Recorder:
    """``py-spy record`` on one process until :meth:`stop`."""

    def __init__(self, pid: int, output: Path, rate: int = 500) -> None:
        self.pid = pid
        self.output = output
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = pyspy_path()
        if exe is None:
            raise RuntimeError("py-spy is not installed: pip install -e '.[bench]'")
        cmd = [exe, "record", "-p", str(self.pid), "-r", str(self.rate), "-f", "raw"]
        cmd += ["--nolineno", "--nonblocking", "-o", str(self.output)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")


def _stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        stacks.append((frames, int(count)))
    return stacks


def _package(frame: str) -> str:
    """``send (twisted/internet/tcp.py)`` -> ``twisted``; stdlib files keep their module."""
    _, _, where = frame.rpartition(" (")
    where = where.rstrip(")")
    top = where.split("/", 1)[0]
    return top.removesuffix(".py") or "?"


def summary(path: Path, messages: int, rate: int, top: int = 12) -> str:
    """Top functions (self and inclusive) and packages in CPU µs per message."""
    stacks = _stacks(path)
    total = sum(count for _, count in stacks)
    if not total or not messages:
        return "  (no samples)"
    per = 1e6 / rate / messages  # µs per message for one sample
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"  {total} samples at {rate} Hz over {messages} messages: {total * per:.1f} µs CPU/message"]
    lines.append("  by package (self time):")
    lines += [f"    {n * per:8.2f} µs  {n / total:5.1%}  {name}" for name, n in packages.most_common(top)]
    lines.append("  by function, self time:")
    lines += [f"    {n * per:8.2f} µs  {n / total:5.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("  by function, inclusive (server libraries; wrappers of nearly everything left out):")
    wanted = [
        (name, n) for name, n in inclusive.most_common() if _package(name) in LIBRARIES and n < 0.9 * total
    ]
    lines += [f"    {n * per:8.2f} µs  {n / total:5.1%}  {name}" for name, n in wanted[:top]]
    return "\n".join(lines)
