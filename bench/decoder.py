"""What ``protocol.decode`` costs on hostile and ordinary frames: ``python -m bench.decoder``.

Prints the median CPU time of one decode per frame (``time.process_time``,
this process only, after one warm-up). The hostile frames are each just
under daphne's 1 MiB message limit. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from wsmanager_client import protocol

MIB = 1024 * 1024


def params_of(call: str, members: str, size: int) -> str:
    """``call`` with params an array of ``members`` repeated to about ``size`` bytes."""
    count = (size - len(call) - 2) // (len(members) + 1)
    return call.replace('["hello"]', "[" + ",".join([members] * count) + "]")


def frames() -> dict[str, str]:
    call = json.dumps({"jsonrpc": "2.0", "method": "send", "params": ["hello"], "id": 1})
    frames = {"1 MiB array of 524,287 zeros": "[" + ",".join(["0"] * 524_287) + "]"}
    for size, label in ((MIB, "1 MiB"), (64 * 1024, "64 KiB")):
        frames[f"{label} call, params of zeros"] = params_of(call, "0", size)
        frames[f"{label} call, params of empty arrays"] = params_of(call, "[]", size)
        for depth, verdict in ((62, "accepted"), (63, "refused")):
            nest = "[" * depth + "]" * depth
            frames[f"{label} call, params of arrays {depth} deep ({verdict})"] = params_of(call, nest, size)
        frames[f"{label} call, one string param"] = call.replace("hello", "x" * (size - 100))
    frames["batch of 100 small calls"] = "[" + ",".join([call] * 100) + "]"
    frames["one small call"] = call
    return frames


def cpu_ms(work: Callable[[], object], repeat: int) -> float:
    work()
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        work()
        samples.append(time.process_time() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    print("| frame | bytes | decode CPU ms (median) |")
    print("| --- | ---: | ---: |")
    for name, text in frames().items():
        repeat = 5 if len(text) > 100_000 else 200
        ms = cpu_ms(lambda text=text: protocol.decode(text, max_batch=100), repeat)
        print(f"| {name} | {len(text.encode()):,} | {ms:.3f} |")


if __name__ == "__main__":
    main()
