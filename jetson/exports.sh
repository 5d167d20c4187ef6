#!/usr/bin/env bash
# On the workstation: the ONNX files for the first device run (jetson/bench_suite.sh), into
# export/calibration/. The shipped digits student and teacher (trained weights), and DiT-Nano
# students of other depths and widths at the same geometry (random weights: latency only), so that
# one run on a Jetson measures how latency grows with depth, width and precision. Each model at
# batch 1..4 as FP32, FP16 and INT8 (Q/DQ). About two minutes on a 2-core CPU.
#
#   jetson/exports.sh && scp -r export/calibration jetson:edgedit/export/
set -euo pipefail

edgedit="${EDGEDIT:-edgedit}"
out="${OUT:-export/calibration}"
mkdir -p "${out}"
digits=(--input-size 16 --in-channels 1 --num-classes 10)

one() {  # one NAME MODEL [overrides...]
  local name=$1 model=$2
  shift 2
  "${edgedit}" export "${model}" "$@" --dynamic-batch 1:4:4 -o "${out}/${name}.fp32.onnx"
  "${edgedit}" export "${model}" "$@" --dynamic-batch 1:4:4 --precision fp16 -o "${out}/${name}.fp16.onnx"
  "${edgedit}" quantize "${out}/${name}.fp32.onnx" --calib-samples 64 -o "${out}/${name}.int8.onnx" --force
}

one student-digits edgedit/assets/student-digits.safetensors
one teacher-digits edgedit/assets/teacher-digits.safetensors
for shape in "2 112 4" "4 48 4" "8 32 4" "8 96 4" "4 160 4" "12 64 4"; do
  read -r depth width heads <<< "${shape}"
  one "nano-L${depth}-D${width}" DiT-Nano-S/2 "${digits[@]}" --depth "${depth}" --width "${width}" --heads "${heads}"
done
echo "jetson/exports.sh: ${out}/ ready; on the Jetson: jetson/run.sh suite ${out}/*.fp32.onnx"
