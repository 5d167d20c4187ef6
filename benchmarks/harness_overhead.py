"""The bench harness's own overhead and its repeatability, on ONNX Runtime CPU.

Overhead: what `edgedit bench --what sampler` times on a one-step model at batch 1 (the sampler:
noise from the seed, label, input checks, batching, the backend call) against a bare backend call
on pre-made inputs. The two are timed alternately, call by call, so that this shared VM's slow
drifts (±15% between identical runs) hit both alike. Target <= 3%.
Repeatability: `edgedit bench --what model` run twice in a row (and N times), p50 within 10%; with
ONNX Runtime's default threads and with --threads 1.

    python benchmarks/harness_overhead.py [--calls 3000] [--runs 5] [--duration 2]
Writes benchmarks/results/harness_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgedit.bench.harness import BenchSettings, fixed_inputs, run_bench
from edgedit.export.exporter import BatchSpec, export_onnx
from edgedit.models.loading import load_model_or_preset
from edgedit.runtime.backends import OnnxRuntimeBackend
from edgedit.runtime.noise import noise_from_seeds
from edgedit.runtime.samplers import generate

HERE = Path(__file__).parent
# A fixed model, so that results stay comparable: DiT-Nano-S/2 at the digits geometry, random weights.
PRESET = "DiT-Nano-S/2"
GEOMETRY = {"input_size": 16, "in_channels": 1, "num_classes": 10}


def interleaved_overhead(backend: OnnxRuntimeBackend, calls: int) -> dict:
    feeds = fixed_inputs(backend, 1)
    parts = {"bare_call": lambda: backend.session.run(None, feeds),
             "sampler_call": lambda: generate(backend, [0]),
             "noise_only": lambda: noise_from_seeds([0], backend.inputs[0].concrete(1)[1:])}
    times = {name: [] for name in parts}
    for _ in range(50):
        for call in parts.values():
            call()
    for _ in range(calls):
        for name, call in parts.items():
            start = time.perf_counter_ns()
            call()
            times[name].append((time.perf_counter_ns() - start) / 1e6)
    p50 = {name: float(np.median(values)) for name, values in times.items()}
    return {**{f"{k}_p50_ms": v for k, v in p50.items()}, "overhead": p50["sampler_call"] / p50["bare_call"] - 1}


def repeatability(onnx: Path, runs: int, duration: float, threads: int) -> dict:
    settings = BenchSettings([1], warmup=5, duration_s=duration, what="model")
    p50 = [run_bench([str(onnx)], ["onnxruntime"], settings, threads=threads)[0][0]["latency_ms"]["p50"]
           for _ in range(runs)]
    return {"threads": threads or "default", "p50_ms": p50, "two_runs": abs(p50[1] - p50[0]) / p50[0],
            "spread": (max(p50) - min(p50)) / statistics.median(p50)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "harness_overhead.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        net, source = load_model_or_preset(PRESET, quiet=True, **GEOMETRY)
        onnx = export_onnx(net, Path(tmp) / "student.onnx", source, BatchSpec.static(1)).path
        overhead = interleaved_overhead(OnnxRuntimeBackend(onnx, "cpu"), args.calls)
        repeats = [repeatability(onnx, args.runs, args.duration, threads) for threads in (0, 1)]
    result = {"model": f"{PRESET} at 16x16x1, 10 classes, random weights, static batch 1",
              "overhead": overhead, "repeatability": repeats}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    o = overhead
    print(f"bare call p50 {o['bare_call_p50_ms']:.3f} ms, sampler call p50 {o['sampler_call_p50_ms']:.3f} ms "
          f"(noise alone {o['noise_only_p50_ms'] * 1e3:.0f} us): overhead {o['overhead'] * 100:+.1f}% (target <= 3%)")
    for r in repeats:
        print(f"threads {r['threads']}: p50 of {args.runs} runs {[round(v, 3) for v in r['p50_ms']]}: two runs differ "
              f"{r['two_runs'] * 100:.1f}% (target <= 10%), spread {r['spread'] * 100:.1f}%")


if __name__ == "__main__":
    main()
