#!/usr/bin/env bash
# The first device run: build FP16 and INT8 engines from the given ONNX files, sample each, and
# bench each at batch 1 and 4, launched kernel by kernel and as a CUDA graph, with tegrastats.
# Everything lands in one results folder that the workstation takes as it is:
#   edgedit bench report RESULTS/ -o report.md      (the comparison)
#   edgedit models --calibrate RESULTS/             (refits the device latency model)
# Run it on the Jetson with edgedit and TensorRT installed, or in the container: jetson/run.sh suite ...
#
#   jetson/bench_suite.sh export/calibration/*.fp32.onnx
#
# Give FP32 exports whose batch range covers 1..4 (jetson/exports.sh makes them): the
# FP16 engine builds from NAME.fp16.onnx when it sits next to the FP32 file (strongly typed), else
# from the FP32 file with the FP16 flag; the INT8 engine from NAME.int8.onnx, else the FP32 file is
# quantized first (generated calibration data). Set the power mode and clocks first, on the host:
# sudo nvpmodel -m <mode>; sudo jetson_clocks.
set -euo pipefail

if [ "$#" -lt 1 ]; then
  echo "usage: $0 MODEL.fp32.onnx [MODEL.fp32.onnx ...]" >&2
  exit 2
fi
edgedit="${EDGEDIT:-edgedit}"
out="${RESULTS:-results}/suite-$(date +%Y%m%d-%H%M%S)"
mkdir -p "${out}/engines"
"${edgedit}" doctor > "${out}/doctor.txt"

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
    "${edgedit}" bench "${plan}" --batch 1,4 --duration 5 --tegrastats --json "${out}/${stem}.${precision}.bench.json"
    "${edgedit}" bench "${plan}" --batch 1,4 --duration 5 --cuda-graph \
      --json "${out}/${stem}.${precision}.graph.bench.json"
  done
done

"${edgedit}" bench report "${out}" -o "${out}/report.md" --plot "${out}/latency.png"
echo "bench_suite: results in ${out}/ (report.md, *.bench.json, engines/ with sidecars, grids, doctor.txt)"
echo "bench_suite: send that folder back; on the workstation: edgedit models --calibrate ${out}"
