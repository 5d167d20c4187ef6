"""The peers on this machine's CPU (issue 13): torch eager, torch.compile, ONNX Runtime FP32, FP16
and INT8 (Q/DQ) for one model at batch 1 and 8, in one interleaved `edgedit bench` run, with the
achieved GFLOP/s of each row next to this CPU's practical peak (a float32 GEMM through numpy's BLAS
on all cores, measured here).

    python benchmarks/peers.py [CHECKPOINT] [--duration 6] [--threads 0] [--json results/peers.json]

Default CHECKPOINT: the shipped digits student. The exports are dynamic-batch 1..8 (as `edgedit
demo` makes them); INT8 is `edgedit quantize`'s default recipe. Target: ONNX Runtime FP32 at least
1.5x torch.compile at batch 1 and 8 (the ratio's 95% interval comes from the interleaved rounds).
torch.compile compiles once per batch size before timing (a minute or more here); bench's warm-up
absorbs it.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import edgedit
from edgedit.bench.comparison import ratio_interval
from edgedit.bench.harness import BenchSettings, run_bench
from edgedit.export.exporter import BatchSpec, export_onnx
from edgedit.models.checkpoint import load_model
from edgedit.pipeline import quantize_with_calibration
from edgedit.runtime.backends import RunOptions

SHIPPED = Path(edgedit.__file__).parent / "assets" / "student-digits.safetensors"


def gemm_peak_gflop_s(size: int = 2048, seconds: float = 3.0) -> float:
    """Best float32 GEMM throughput through numpy's BLAS: the practical peak the rows are read against."""
    a, b = (np.random.default_rng(0).standard_normal((size, size), dtype=np.float32) for _ in range(2))
    a @ b  # warm-up: threads, caches
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def exports(checkpoint: Path, folder: Path) -> list[Path]:
    net, _ = load_model(checkpoint)
    source = {"checkpoint": checkpoint.name}
    fp32 = export_onnx(net, folder / "student.fp32.onnx", source, BatchSpec.parse("1:8:8")).path
    fp16 = export_onnx(net, folder / "student.fp16.onnx", source, BatchSpec.parse("1:8:8"), precision="fp16").path
    int8 = quantize_with_calibration(fp32, folder / "student.int8.onnx").path
    return [fp32, fp16, int8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", type=Path, default=SHIPPED)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of timed calls per row")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads of torch and ONNX Runtime")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "peers.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        onnx = exports(args.checkpoint, Path(scratch))
        peak = gemm_peak_gflop_s()
        settings = BenchSettings([1, 8], warmup=5, duration_s=args.duration, rounds=10)
        records, _ = run_bench(
            [str(args.checkpoint), *map(str, onnx)], ["auto"], settings, RunOptions(threads=args.threads)
        )
    rows = {(r.backend, r.precision, r.batch): r for r in records}
    lines = [
        f"{records[0].env.cpu}, {platform.python_version()}, practical peak {peak:.0f} GFLOP/s "
        f"(float32 GEMM 2048, numpy BLAS); {args.duration:g} s per row in 10 interleaved rounds",
        "",
        "| backend | precision | batch | p50 ms | GFLOP/s | % of peak | vs torch eager (95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        eager = rows[("torch", "fp32", r.batch)]
        ci = ratio_interval(eager.round_p50_ms, r.round_p50_ms) if r is not eager else None
        ratio = eager.latency_ms.p50 / r.latency_ms.p50
        lines.append(
            f"| {r.backend} | {r.precision} | {r.batch} | {r.latency_ms.p50:.3f} | "
            f"{r.gflop_s:.2f} | {r.gflop_s / peak:.1%} | {ratio:.2f}x"
            + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")
            + " |"
        )
    verdicts = []
    for batch in (1, 8):
        ort, compiled = rows[("onnxruntime", "fp32", batch)], rows[("torch-compile", "fp32", batch)]
        ratio = compiled.latency_ms.p50 / ort.latency_ms.p50
        low, high = ratio_interval(compiled.round_p50_ms, ort.round_p50_ms) or (float("nan"),) * 2
        verdicts.append(
            {"batch": batch, "ort_fp32_vs_torch_compile": ratio, "ci95": [low, high], "target_1_5x_met": ratio >= 1.5}
        )
        lines.append(
            f"\nbatch {batch}: ONNX Runtime FP32 is {ratio:.2f}x torch.compile (95% CI {low:.2f}-{high:.2f}); "
            f"target >= 1.5x {'met' if ratio >= 1.5 else 'missed'}"
        )
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"peak_gflop_s": peak, "verdicts": verdicts, "records": [r.model_dump(mode="json") for r in records]},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
