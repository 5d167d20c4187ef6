"""torch eager vs ONNX Runtime FP32 vs ONNX Runtime INT8 (Q/DQ) on this machine's CPU.

One run measures, for two DiT-Nano presets at batch 1 and 8 (static-batch exports, as TensorRT
would build them), the latency per network call of each backend, the ratios that the targets
are stated in, and the INT8 accuracy (output PSNR against FP32 on held-out inputs). Presets have
random weights at trained-like scales (`edgedit.models.loading.random_weights`): latency does
not depend on the values, but INT8 accuracy of trained students must be re-measured on them.

    python benchmarks/cpu_backends.py [--presets DiT-Nano-S/2 DiT-Nano-M/2] [--duration 3]

Targets: ORT FP32 >= 1.5x faster than torch eager at batch 1; ORT INT8 >= 1.3x faster than ORT
FP32 at batch 8 with PSNR >= 30 dB. Writes benchmarks/results/cpu_backends.json and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from edgedit.bench.latency import measure
from edgedit.export.calibration import CALIBRATION_SEED, HELDOUT_SEED, record_inputs
from edgedit.export.exporter import BatchSpec, export_onnx
from edgedit.export.quantize import quantize_onnx
from edgedit.models.loading import load_model_or_preset
from edgedit.runtime.backends import OnnxRuntimeBackend, TorchBackend
from edgedit.runtime.noise import noise_from_seeds

HERE = Path(__file__).parent


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "torch_threads": torch.get_num_threads()}


def bench_preset(preset: str, batches: list[int], duration: float, folder: Path) -> list[dict]:
    net, source = load_model_or_preset(preset, quiet=True)
    eager = TorchBackend(preset, quiet=True)
    rows = []
    for batch in batches:
        fp32_path = export_onnx(net, folder / f"fp32-b{batch}.onnx", source, BatchSpec.static(batch)).path
        fp32 = OnnxRuntimeBackend(fp32_path, "cpu")
        calib = record_inputs(fp32, 128, CALIBRATION_SEED)
        heldout = record_inputs(fp32, 64, HELDOUT_SEED)
        q = quantize_onnx(fp32_path, folder / f"int8-b{batch}.onnx", calib, heldout, force=True)
        int8 = OnnxRuntimeBackend(q.path, "cpu")
        feeds = {"z": noise_from_seeds(range(batch), fp32.inputs[0].concrete(1)[1:])}
        stats = {name: measure(lambda b=backend: b.run(feeds), warmup=5, duration_s=duration)
                 for name, backend in (("torch", eager), ("ort_fp32", fp32), ("ort_int8", int8))}
        row = {"preset": preset, "batch": batch, "params": net.num_params(), "int8_psnr_db": q.psnr_db,
               "int8_max_abs_error": q.max_abs_error, "quantized_layers": len(q.quantized),
               **{f"{k}_ms": v.to_dict() for k, v in stats.items()},
               "fp32_vs_torch": stats["torch"].p50 / stats["ort_fp32"].p50,
               "int8_vs_fp32": stats["ort_fp32"].p50 / stats["ort_int8"].p50}
        rows.append(row)
        print(f"{preset} batch {batch}: torch {stats['torch'].p50:.2f} ms, ORT FP32 {stats['ort_fp32'].p50:.2f} ms, "
              f"ORT INT8 {stats['ort_int8'].p50:.2f} ms (p50); INT8 PSNR {q.psnr_db:.1f} dB", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| preset | batch | torch eager ms | ORT FP32 ms | ORT INT8 ms | FP32 vs torch | INT8 vs FP32 | INT8 PSNR dB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['batch']} | {r['torch_ms']['p50']:.2f} | {r['ort_fp32_ms']['p50']:.2f} | "
                     f"{r['ort_int8_ms']['p50']:.2f} | {r['fp32_vs_torch']:.2f}x | {r['int8_vs_fp32']:.2f}x | "
                     f"{r['int8_psnr_db']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["DiT-Nano-S/2", "DiT-Nano-M/2"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of timed calls per measurement")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cpu_backends.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for preset in args.presets
                for row in bench_preset(preset, args.batches, args.duration, Path(tmp) / preset.replace("/", "-"))]
    result = {"machine": machine(), "rows": rows, "statistic": "p50 latency per network call"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["machine"]))
    print(markdown(rows))


if __name__ == "__main__":
    main()
