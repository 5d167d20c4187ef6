#!/usr/bin/env bash
# INT8 of the shipped digits student, edgedit's measured plan beside NVIDIA ModelOpt's ONNX PTQ, all
# typed FP16 outside INT8: the graphs (Q/DQ nodes, op types), the accuracy (PSNR against FP32 on the
# quantizer's held-out inputs, and FID on 1,000 sample seeds no choice was tuned on) and the
# estimated Orin Nano latency of each file's plan.
#
#   benchmarks/int8_vs_modelopt.sh            # -> runs/int8/ (files), docs/int8/comparison.md + .json
#
# Variants: edgedit's plan (ONNX Runtime's quantizer) with max, entropy and percentile calibration;
# ModelOpt restricted to the plan's nodes (equal INT8 coverage) with max and entropy; ModelOpt's own
# default node choice with max and entropy; the FP32-typed Q/DQ form and FP16 for reference.
# ModelOpt pulls onnxruntime-gpu, cupy and an older onnx, so it lives in .venv-modelopt (made here if
# missing, from PyPI: `python3 -m venv .venv-modelopt && .venv-modelopt/bin/pip install -e .
# "nvidia-modelopt[onnx]" onnx-graphsurgeon`); it runs on the CPU. About 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/int8}"
venv="${VENV:-.venv}"
modelopt="${MODELOPT_VENV:-.venv-modelopt}"
fid_seed="${FID_SEED:-50000}"  # FID seeds 50000-50999: no run, sweep or shipping choice used them
student=edgedit/assets/student-digits.safetensors
mkdir -p "${out}" docs/int8

if [[ ! -x "${modelopt}/bin/python" ]]; then
    python3 -m venv "${modelopt}"
    "${modelopt}/bin/pip" install -q -e . "nvidia-modelopt[onnx]" onnx-graphsurgeon
fi

e() { "${venv}/bin/edgedit" "$@"; }
[[ -s "${out}/student.fp32.onnx" ]] || e export "${student}" -o "${out}/student.fp32.onnx" --dynamic-batch 1:64:64
[[ -s "${out}/student.fp16.onnx" ]] || e export "${student}" -o "${out}/student.fp16.onnx" --dynamic-batch 1:64:64 \
    --precision fp16
for method in max entropy percentile; do
    [[ -s "${out}/edgedit-${method}.onnx" ]] || e quantize "${out}/student.fp32.onnx" --method "${method}" \
        --tool onnxruntime -o "${out}/edgedit-${method}.onnx" --json > "${out}/edgedit-${method}.json"
done
[[ -s "${out}/edgedit-max-fp32typed.onnx" ]] || e quantize "${out}/student.fp32.onnx" --tool onnxruntime \
    --high-precision fp32 -o "${out}/edgedit-max-fp32typed.onnx" --json > "${out}/edgedit-max-fp32typed.json"

# ModelOpt on the plan's nodes (edgedit's own --tool modelopt: the plan measured as above, the file made
# by ModelOpt), and ModelOpt's default choice of nodes (no node list).
for method in max entropy; do
    [[ -s "${out}/modelopt-plan-${method}.onnx" ]] || "${modelopt}/bin/edgedit" quantize "${out}/student.fp32.onnx" \
        --method "${method}" --tool modelopt -o "${out}/modelopt-plan-${method}.onnx" --force --json \
        > "${out}/modelopt-plan-${method}.json"
    [[ -s "${out}/modelopt-default-${method}.onnx" ]] || "${modelopt}/bin/python" - "${out}" "${method}" <<'PY'
import sys
from pathlib import Path

from modelopt.onnx.quantization import quantize

from edgedit.export.calib_data import CALIBRATION_SEED, record_inputs
from edgedit.runtime.onnxruntime import OnnxRuntimeBackend

out, method = Path(sys.argv[1]), sys.argv[2]
source = out / "student.fp32.onnx"
data = record_inputs(OnnxRuntimeBackend(source, "cpu"), 64, CALIBRATION_SEED)  # edgedit's calibration inputs
target = out / f"modelopt-default-{method}.onnx"
quantize(onnx_path=str(source), quantize_mode="int8", calibration_data=data, calibration_method=method,
         calibration_eps=["cpu"], high_precision_dtype="fp16", output_path=str(target), log_level="WARNING")
# ModelOpt drops metadata_props: the source's edgedit metadata, as an INT8 file (its FP32 parity dropped)
import onnx

from edgedit.export import graph

meta = {k: v for k, v in graph.metadata(onnx.load(source, load_external_data=False)).items() if k != "edgedit.parity"}
model = onnx.load(target)
graph.set_metadata(model, {**meta, "edgedit.precision": "int8"}, replace_prefix="edgedit.")
onnx.save(model, target)
PY
done

"${venv}/bin/python" benchmarks/int8_report.py "${out}" --fid-seed "${fid_seed}" -o docs/int8/comparison
