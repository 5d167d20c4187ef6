#!/usr/bin/env bash
# Build FP16 and INT8 engines from the given ONNX files, bench them at batch 1 and 4 with
# tegrastats, and collect JSON records and a report into one results folder. Run it on the
# Jetson, inside the container (jetson/run.sh) or wherever edgedit and TensorRT are installed.
#
#   jetson/bench_suite.sh export/student.fp32.onnx [export/other.fp32.onnx ...]
#
# Give FP32 exports with a batch range covering 1..4 (edgedit export --dynamic-batch 1:4:4):
# the FP16 engine builds from the FP32 file with the FP16 flag unless NAME.fp16.onnx sits next
# to it (then strongly typed); the INT8 engine quantizes the FP32 file first (generated
# calibration data) unless NAME.int8.onnx sits next to it.
set -euo pipefail

if [ "$#" -lt 1 ]; then
  echo "usage: $0 MODEL.onnx [MODEL.onnx ...]" >&2
  exit 2
fi
edgedit="${EDGEDIT:-edgedit}"
out="${RESULTS:-results}/suite-$(date +%Y%m%d-%H%M%S)"
mkdir -p "${out}/engines"
"${edgedit}" doctor --json > "${out}/doctor.json"

records=()
for onnx in "$@"; do
  if [ ! -f "${onnx}" ]; then
    echo "bench_suite: ${onnx}: no such file" >&2
    exit 2
  fi
  stem="$(basename "${onnx}" .onnx)"
  stem="${stem%.fp32}"
  dir="$(dirname "${onnx}")"
  for precision in fp16 int8; do
    source="${onnx}"
    if [ -f "${dir}/${stem}.${precision}.onnx" ]; then source="${dir}/${stem}.${precision}.onnx"; fi
    plan="${out}/engines/${stem}.${precision}.plan"
    "${edgedit}" build-engine "${source}" --precision "${precision}" -o "${plan}"
    "${edgedit}" sample "${plan}" -n 16 -o "${out}/${stem}.${precision}.png"
    "${edgedit}" bench "${plan}" --batch 1,4 --duration 10 --tegrastats --json "${out}/${stem}.${precision}.json"
    records+=("${out}/${stem}.${precision}.json")
  done
done

"${edgedit}" bench report "${records[@]}" -o "${out}/report.md" --plot "${out}/latency.png"
echo "bench_suite: results in ${out}/ (report.md, per-engine JSON, sidecars, sample grids, doctor.json)"
