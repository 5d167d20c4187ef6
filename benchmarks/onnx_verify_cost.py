"""What checking an ONNX file costs at load: reading its graph without onnx, checking the metadata
against it, and hashing its weights (edgedit.contract.spec.read_model), against ONNX Runtime's own
session creation for the same file. Interleaved rounds, medians; one machine, one run.

    python benchmarks/onnx_verify_cost.py export/student.onnx export/dit-s2.onnx [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import onnxruntime as ort

from edgedit.contract import spec
from edgedit.contract.fileio import verification


def timed(call, *args) -> float:
    start = time.perf_counter()
    call(*args)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    def read(path: Path, verify: bool) -> None:
        spec._READ.clear()  # every round reads the file anew
        with verification(verify):
            spec.read_model(path)

    def session(path: Path) -> None:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    print(
        "| model | size | checks, no hash (ms) | checks + weights hash (ms) | hash alone (ms) | "
        "ONNX Runtime session (ms) | verification / session |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in args.models:
        times: dict[str, list[float]] = {"plain": [], "hashed": [], "session": []}
        for _ in range(args.rounds):  # interleaved: a slow moment of the machine is shared
            times["plain"].append(timed(read, path, False))
            times["hashed"].append(timed(read, path, True))
            times["session"].append(timed(session, path))
        plain, hashed, opened = (statistics.median(times[k]) for k in ("plain", "hashed", "session"))
        print(
            f"| {path.name} | {path.stat().st_size / 2**20:.1f} MiB | {plain:.2f} | {hashed:.2f} | "
            f"{hashed - plain:.2f} | {opened:.1f} | {hashed / opened:.2f}x |"
        )


if __name__ == "__main__":
    main()
