"""Same seeds, same images? torch eager vs ONNX Runtime FP32 / FP16 / INT8, end to end.

For a one-step student and a multi-step EDM denoiser (18 Heun steps), generate images from the
same seeds through every backend and precision and report each one's PSNR against torch eager
FP32 (peak = the reference images' range), plus the export parity and INT8 records. Presets get
random weights at trained-like scales; trained models should be re-measured.

    python benchmarks/precision_agreement.py
Writes benchmarks/results/precision_agreement.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from edgedit.eval.metrics import psnr_db
from edgedit.export.calib_data import CALIBRATION_SEED, HELDOUT_SEED, record_inputs
from edgedit.export.exporter import BatchSpec, export_onnx
from edgedit.export.quantize import QuantizeOptions, quantize_onnx
from edgedit.models.loading import load_model_or_preset
from edgedit.models.torch_backend import TorchBackend
from edgedit.runtime.onnxruntime import OnnxRuntimeBackend
from edgedit.runtime.samplers import generate

HERE = Path(__file__).parent


def agreement(preset: str, samples: int, calib_samples: int, folder: Path) -> dict:
    net, source = load_model_or_preset(preset, quiet=True)
    batch = BatchSpec.parse("1:8:8")
    fp32 = export_onnx(net, folder / "fp32.onnx", source, batch)
    fp16 = export_onnx(net, folder / "fp16.onnx", source, batch, precision="fp16")
    reference = OnnxRuntimeBackend(fp32.path, "cpu")
    calib = record_inputs(reference, calib_samples, CALIBRATION_SEED)
    heldout = record_inputs(reference, max(calib_samples // 4, 2), HELDOUT_SEED)
    int8 = quantize_onnx(fp32.path, folder / "int8.onnx", calib, heldout, QuantizeOptions(force=True))
    seeds = list(range(samples))
    images = {"torch": generate(TorchBackend(net, source), seeds)}  # the weights that were exported
    for name, path in (("onnx_fp32", fp32.path), ("onnx_fp16", fp16.path), ("onnx_int8", int8.path)):
        images[name] = generate(OnnxRuntimeBackend(path, "cpu"), seeds)
    return {
        "preset": preset,
        "kind": net.config.kind,
        "samples": samples,
        "sampler": "one step" if net.config.one_step else "EDM Heun, 18 steps (35 evaluations)",
        "parity_fp32": fp32.parity,
        "parity_fp16": fp16.parity,
        "int8": {
            "psnr_db_network_output": int8.psnr_db,
            "calibration_rows": int8.calibration_rows,
            "quantized_layers": len(int8.quantized),
            "zero_points_checked": int8.zero_points,
        },
        "image_psnr_db_vs_torch": {k: psnr_db(images["torch"], v) for k, v in images.items() if k != "torch"},
        "image_max_abs_vs_torch": {
            k: float(np.abs(images["torch"] - v).max()) for k, v in images.items() if k != "torch"
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["DiT-Nano-S/2", "DiT-Teacher-Digits/2"])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "precision_agreement.json")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [agreement(p, args.samples, args.calib_samples, Path(tmp) / p.replace("/", "-")) for p in args.presets]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(
        "| preset | sampler | export parity FP32 / FP16 (max rel, batch 1 and 8) "
        "| image PSNR vs torch: ONNX FP32 | FP16 | INT8 |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        parity = " / ".join(
            ", ".join(f"{c['max_rel_error']:.1e}" for c in r[k]) for k in ("parity_fp32", "parity_fp16")
        )
        p = r["image_psnr_db_vs_torch"]
        print(
            f"| {r['preset']} | {r['sampler']} | {parity} | {p['onnx_fp32']:.1f} dB | {p['onnx_fp16']:.1f} dB | "
            f"{p['onnx_int8']:.1f} dB |"
        )


if __name__ == "__main__":
    main()
