"""`edgedit demo`: the whole deploy path on the embedded default, on whatever this machine has.

Default DiT-Nano (random weights until a trained student ships) -> ONNX FP32 + FP16 exports ->
INT8 Q/DQ with generated calibration data -> FP16 and INT8 TensorRT engines when TensorRT and a
GPU are here -> one sample grid per precision -> every available backend and precision benched at
batch 1 and 8 -> a comparison table, the grids, bench.json and report.md in one folder.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The embedded default student: DiT-Nano-S at the geometry of the bundled digits (16x16x1, 10 classes).
DEFAULT_PRESET = "DiT-Nano-S/2"
DEFAULT_GEOMETRY = {"input_size": 16, "in_channels": 1, "num_classes": 10}
BATCHES = [1, 8]


def run_demo(out: Path, duration_s: float = 1.5, say: Callable[[str], None] = print) -> dict[str, Any]:
    from edgedit.bench import report as reports
    from edgedit.bench.harness import BenchSettings, run_bench
    from edgedit.export.calibration import CALIBRATION_SEED, HELDOUT_SEED, record_inputs
    from edgedit.export.exporter import BatchSpec, export_onnx
    from edgedit.export.quantize import quantize_onnx
    from edgedit.fileio import write_text_atomic
    from edgedit.models.loading import load_model_or_preset
    from edgedit.runtime.backends import OnnxRuntimeBackend, load_backend
    from edgedit.runtime.images import make_grid, save_png
    from edgedit.runtime.samplers import generate

    out.mkdir(parents=True, exist_ok=True)
    say(f"model: {DEFAULT_PRESET} at digits geometry (16x16x1, 10 classes) with RANDOM weights: no trained "
        "student ships yet, so latency is meaningful and the images are noise")
    net, source = load_model_or_preset(DEFAULT_PRESET, quiet=True, **DEFAULT_GEOMETRY)
    batch = BatchSpec(min(BATCHES), max(BATCHES), max(BATCHES))
    models: dict[str, Path] = {}
    for precision in ("fp32", "fp16"):
        report = export_onnx(net, out / f"student.{precision}.onnx", source, batch, precision)
        worst = max(c["max_rel_error"] for c in report.parity)
        say(f"exported {report.path.name}: parity vs torch, max relative error {worst:.2g}")
        models[f"onnx-{precision}"] = report.path
    fp32 = OnnxRuntimeBackend(models["onnx-fp32"], "cpu")
    int8 = quantize_onnx(models["onnx-fp32"], out / "student.int8.onnx", record_inputs(fp32, 64, CALIBRATION_SEED),
                         record_inputs(fp32, 16, HELDOUT_SEED))
    say(f"quantized {int8.path.name} with {int8.tool}: {len(int8.quantized)} layers INT8, "
        f"PSNR {int8.psnr_db:.1f} dB vs FP32 on held-out inputs")
    models["onnx-int8"] = int8.path

    from edgedit.doctor import cuda_devices

    if importlib.util.find_spec("tensorrt") is not None and cuda_devices()["devices"]:
        from edgedit.engines.build import build_engine

        for precision, onnx in (("fp16", models["onnx-fp16"]), ("int8", models["onnx-int8"])):
            built = build_engine(onnx, out / f"student.{precision}.plan", precision)
            say(f"built {built.plan.name} in {built.sidecar['build_seconds']:.1f} s")
            models[f"tensorrt-{precision}"] = built.plan
    else:
        say("TensorRT engines: skipped, no TensorRT or CUDA GPU here (build them on the Jetson: jetson/bench_suite.sh)")

    seeds = list(range(16))
    backends = {"torch-fp32": load_backend(DEFAULT_PRESET, "torch", quiet=True, **DEFAULT_GEOMETRY)}
    backends.update({name: load_backend(path) for name, path in models.items()})
    for name, backend in backends.items():
        save_png(out / f"grid-{name}.png", make_grid(generate(backend, seeds, batch=8), columns=8))
    say(f"wrote {len(backends)} sample grids (seeds 0-15)")

    settings = BenchSettings(BATCHES, warmup=3, duration_s=duration_s)
    records, _ = run_bench([str(p) for p in models.values()], ["auto"], settings)
    records = _bench_torch(settings, DEFAULT_GEOMETRY) + records
    reports.save_json(out / "bench.json", records)
    write_text_atomic(out / "report.md", "# edgedit demo\n\n" + reports.markdown(records))
    return {"records": records, "models": models}


def _bench_torch(settings, geometry) -> list[dict[str, Any]]:
    """torch eager on the same weights: the reference row of the comparison."""
    from edgedit.bench.harness import bench_one, current_rss_mb, reset_peak_rss
    from edgedit.runtime.backends import TorchBackend

    reset_peak_rss()
    rss = current_rss_mb()
    backend = TorchBackend(DEFAULT_PRESET, quiet=True, **geometry)
    return [bench_one(backend, DEFAULT_PRESET, b, settings, rss) for b in settings.batches]
