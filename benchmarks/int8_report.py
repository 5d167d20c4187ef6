"""The INT8 comparison table of benchmarks/int8_vs_modelopt.sh: every quantized file of a folder beside
FP32 and FP16, with its graph (Q/DQ nodes, INT8 layer classes found in it, op types of the rest),
its accuracy (PSNR against FP32 on held-out inputs from seeds no calibration used; FID on 1,000
fresh seeds) and the estimated Orin Nano latency of the plan found in its graph.

    python benchmarks/int8_report.py runs/int8 --fid-seed 50000 -o docs/int8/comparison
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
import onnx

from edgedit.contract.quantization import INT8_CLASSES, PrecisionPlan, fp32_class, int8_class
from edgedit.contract.staging import write_text_atomic
from edgedit.cost.fit import estimate
from edgedit.eval.evaluate import evaluate
from edgedit.eval.metrics import psnr_db
from edgedit.export import graph
from edgedit.export.calib_data import HELDOUT_SEED, record_inputs
from edgedit.export.precision import outputs
from edgedit.runtime.onnxruntime import OnnxRuntimeBackend


def graph_facts(path: Path) -> dict:
    """Q/DQ counts, the INT8 classes (a MatMul/Gemm/Conv fed by a DequantizeLinear), the FP32 candidate
    classes that stayed FP32 and a histogram of the float types the other nodes produce."""
    model = onnx.load(path)
    node_types = graph.node_output_types(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    ops = collections.Counter(n.op_type for n in model.graph.node)
    int8 = {
        int8_class(n.name)
        for n in model.graph.node
        if n.op_type in ("MatMul", "Gemm", "Conv")
        and any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in n.input)
    }
    float_types = collections.Counter(
        node_types.get(n.name, "?")
        for n in model.graph.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear", "Cast")
    )
    typed_fp16 = "fp16" in node_types.values()  # an FP32 graph keeps nothing: it is all FP32
    fp32_kept = sorted(
        {
            fp32_class(n.name, n.op_type)
            for n in model.graph.node
            if typed_fp16 and node_types.get(n.name) == "fp32" and n.op_type not in ("Cast", "DequantizeLinear")
        }
        - {None}
    )
    return {
        "q": ops["QuantizeLinear"],
        "dq": ops["DequantizeLinear"],
        "casts": ops["Cast"],
        "int8_classes": [c for c in INT8_CLASSES if c in int8],
        "fp32_classes": fp32_kept,
        "fp32_nodes": float_types["fp32"],
        "fp16_nodes": float_types["fp16"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--fid-seed", type=int, default=50000)
    parser.add_argument("-o", "--output", type=Path, required=True, help="writes OUTPUT.md and OUTPUT.json")
    args = parser.parse_args()
    fp32 = args.folder / "student.fp32.onnx"
    reference = OnnxRuntimeBackend(fp32, "cpu")
    heldout = record_inputs(reference, 64, HELDOUT_SEED)
    batches = [{k: v[i : i + 64] for k, v in heldout.items()} for i in range(0, len(heldout["z"]), 64)]
    truth = outputs(fp32, batches)
    files = [
        fp32,
        args.folder / "student.fp16.onnx",
        *sorted(args.folder.glob("edgedit-*.onnx")),
        *sorted(args.folder.glob("modelopt-*.onnx")),
    ]
    rows = []
    for path in files:
        facts = graph_facts(path)
        int8 = bool(facts["int8_classes"])
        typed = "fp32" if "fp32typed" in path.name or path == fp32 else "fp16"
        plan = PrecisionPlan(int8=tuple(facts["int8_classes"]), high=typed, fp32=tuple(facts["fp32_classes"]))
        precision = ("int8" if typed == "fp16" else "int8-fp32") if int8 else typed
        ms = {d: estimate(reference.meta.config, d, precision, plan=plan).ms for d in ("orin-nano", "orin-nano-super")}
        report = evaluate(str(path), "digits", n=1000, seed=args.fid_seed)
        metrics = {m.metric: m.value for m in report.metrics}
        rows.append(
            {
                "file": path.name,
                **facts,
                "precision": precision,
                "psnr_db": psnr_db(truth, outputs(path, batches)) if path != fp32 else None,
                "fid": metrics.get("FID"),
                "confidence": metrics.get("classifier confidence"),
                "coverage": metrics.get("class coverage"),
                "orin_nano_ms": ms["orin-nano"],
                "orin_nano_super_ms": ms["orin-nano-super"],
            }
        )
        print(rows[-1], flush=True)
    fp16_fid = next(r["fid"] for r in rows if r["file"] == "student.fp16.onnx")
    lines = [
        f"FID: domain FID on the digits classifier's features, 1,000 samples, seeds {args.fid_seed}-"
        f"{args.fid_seed + 999} (never used to tune anything); PSNR against FP32 on 64 held-out inputs (seeds "
        f"{HELDOUT_SEED}+); latency: the calibrated kernel model's estimate for the plan found in each graph "
        "(not a measurement). INT8 classes: the layer classes whose MatMul/Gemm/Conv reads a "
        "DequantizeLinear.",
        "",
        "| file | Q / DQ | INT8 classes | FP32 classes | nodes FP16 / FP32 | PSNR dB | FID | FID / FP16 | "
        "Nano ms | Super ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        psnr = "-" if r["psnr_db"] is None else ("inf" if not np.isfinite(r["psnr_db"]) else f"{r['psnr_db']:.1f}")
        lines.append(
            f"| {r['file']} | {r['q']} / {r['dq']} | {', '.join(r['int8_classes']) or '-'} | "
            f"{', '.join(r['fp32_classes']) or '-'} | {r['fp16_nodes']} / {r['fp32_nodes']} | {psnr} | "
            f"{r['fid']:.1f} | {r['fid'] / fp16_fid:.3f} | {r['orin_nano_ms']:.3f} | "
            f"{r['orin_nano_super_ms']:.3f} |"
        )
    write_text_atomic(args.output.with_suffix(".md"), "\n".join(lines) + "\n")
    write_text_atomic(args.output.with_suffix(".json"), json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
