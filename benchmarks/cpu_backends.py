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
import logging
import os
import platform
import tempfile
from functools import partial
from pathlib import Path

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


def ort_placement_int8(fp32_path: Path, out: Path, calib: dict, quantized_nodes: list[str], batch: int) -> Path:
    """The same layers quantized with ONNX Runtime's own Q/DQ placement (outputs quantized too, the
    pattern its CPU integer kernels fuse), for comparison only: TensorRT wants inputs-only."""
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.items = iter({"z": calib["z"][i:i + batch]} for i in range(0, len(calib["z"]) - batch + 1, batch))

        def get_next(self):
            return next(self.items, None)

    q.quantize_static(str(fp32_path), str(out), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                      activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                      nodes_to_quantize=quantized_nodes,
                      extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                     "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}})
    return out


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
        ort_style = onnxruntime.InferenceSession(
            str(ort_placement_int8(fp32_path, folder / f"int8-ort-b{batch}.onnx", calib, q.quantized, batch)),
            providers=["CPUExecutionProvider"])
        feeds = {"z": noise_from_seeds(range(batch), fp32.inputs[0].concrete(1)[1:])}
        calls = {"torch": partial(eager.run, feeds), "ort_fp32": partial(fp32.run, feeds),
                 "ort_int8": partial(int8.run, feeds), "ort_int8_ort_placement": partial(ort_style.run, None, feeds)}
        stats = {name: measure(call, warmup=5, duration_s=duration) for name, call in calls.items()}
        row = {"preset": preset, "batch": batch, "params": net.num_params(), "int8_psnr_db": q.psnr_db,
               "int8_max_abs_error": q.max_abs_error, "quantized_layers": len(q.quantized),
               **{f"{k}_ms": v.to_dict() for k, v in stats.items()},
               "fp32_vs_torch": stats["torch"].p50 / stats["ort_fp32"].p50,
               "int8_vs_fp32": stats["ort_fp32"].p50 / stats["ort_int8"].p50,
               "int8_ort_placement_vs_fp32": stats["ort_fp32"].p50 / stats["ort_int8_ort_placement"].p50}
        rows.append(row)
        print(f"{preset} batch {batch}: torch {stats['torch'].p50:.2f} ms, ORT FP32 {stats['ort_fp32'].p50:.2f} ms, "
              f"ORT INT8 {stats['ort_int8'].p50:.2f} ms (p50); INT8 PSNR {q.psnr_db:.1f} dB", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| preset | batch | torch eager ms | ORT FP32 ms | ORT INT8 ms | FP32 vs torch | INT8 vs FP32 | "
             "INT8 PSNR dB | INT8 (ORT placement) ms | its speed vs FP32 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['batch']} | {r['torch_ms']['p50']:.2f} | {r['ort_fp32_ms']['p50']:.2f} | "
                     f"{r['ort_int8_ms']['p50']:.2f} | {r['fp32_vs_torch']:.2f}x | {r['int8_vs_fp32']:.2f}x | "
                     f"{r['int8_psnr_db']:.1f} | {r['ort_int8_ort_placement_ms']['p50']:.2f} | "
                     f"{r['int8_ort_placement_vs_fp32']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["DiT-Nano-S/2", "DiT-Nano-M/2"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of timed calls per measurement")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cpu_backends.json")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's advice on the root logger
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
