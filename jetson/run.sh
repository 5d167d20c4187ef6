#!/usr/bin/env bash
# Run edgedit in its L4T container on a Jetson, with what tegrastats, nvpmodel and jtop need.
#   jetson/run.sh doctor
#   jetson/run.sh build-engine export/student.fp16.onnx --precision fp16
#   jetson/run.sh bench engines/student.fp16.fp16.plan --batch 1,4 --tegrastats
#   jetson/run.sh suite export/calibration/*.fp32.onnx     # jetson/bench_suite.sh, results in results/
# export/, engines/ and results/ of the current folder are mounted at /work/.
# Power modes and clocks are set on the host (sudo nvpmodel -m N; sudo jetson_clocks), not here.
set -euo pipefail

image="${EDGEDIT_IMAGE:-edgedit:l4t}"
here="$(pwd)"
mkdir -p "${here}/export" "${here}/engines" "${here}/results"

args=(--runtime nvidia --rm --network host --ipc host
      -v "${here}/export:/work/export" -v "${here}/engines:/work/engines" -v "${here}/results:/work/results")
# Host facts edgedit reports (doctor, sidecars, bench records): L4T release, power mode, tegrastats.
for path in /etc/nv_tegra_release /etc/nvpmodel.conf /var/lib/nvpmodel /usr/bin/tegrastats; do
  if [ -e "${path}" ]; then args+=(-v "${path}:${path}:ro"); fi
done
if [ -S /run/jtop.sock ]; then args+=(-v /run/jtop.sock:/run/jtop.sock); fi
if [ -t 0 ] && [ -t 1 ]; then args+=(-it); fi

if [ "${1:-}" = "suite" ]; then
  shift
  exec docker run "${args[@]}" --entrypoint /opt/edgedit/jetson/bench_suite.sh -w /work "${image}" "$@"
fi
exec docker run "${args[@]}" "${image}" "$@"
