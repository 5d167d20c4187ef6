#!/usr/bin/env bash
# Check edgedit's TensorRT path on real hardware (a Jetson, or any machine with TensorRT + CUDA).
# The development machines and CI have neither: there the TensorRT code is only tested against
# fakes (tests/fakes). This script is what proves it on a device.
#
#   jetson/selftest.sh student.fp32.onnx [student.fp16.onnx] [student.int8.onnx]
#
# Make the ONNX files on a workstation (e.g. `edgedit demo -o demo-out`, then copy
# demo-out/student.*.onnx). For every file and every precision it can build, the script builds an
# engine, samples 8 images through TensorRT and, where onnxruntime is installed, through ONNX
# Runtime too, and fails when their PSNR is below the precision's floor. Where the workstation
# stack (torch, onnx, pytest) is also installed, it runs the `device`-marked tests as well.
set -euo pipefail

if [ "$#" -lt 1 ]; then
  echo "usage: $0 MODEL.onnx [MODEL.onnx ...]" >&2
  exit 2
fi
edgedit="${EDGEDIT:-edgedit}"
out="${SELFTEST_OUT:-selftest-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "${out}"
"${edgedit}" doctor | tee "${out}/doctor.txt"

failures=0
for onnx in "$@"; do
  name="$(basename "${onnx}" .onnx)"
  case "${name}" in
    *.int8) precisions="int8 best" ;;
    *.fp16) precisions="fp16" ;;
    *) precisions="fp32 fp16 int8" ;;
  esac
  have_ort=0
  if python3 -c "import onnxruntime" 2>/dev/null; then
    have_ort=1
    "${edgedit}" sample "${onnx}" -n 8 --backend onnxruntime -o "${out}/${name}.ort.png" --npz "${out}/${name}.ort.npz"
  fi
  for precision in ${precisions}; do
    plan="${out}/${name}.${precision}.plan"
    "${edgedit}" build-engine "${onnx}" --precision "${precision}" -o "${plan}"
    "${edgedit}" sample "${plan}" -n 8 -o "${out}/${name}.${precision}.png" --npz "${out}/${name}.${precision}.npz"
    "${edgedit}" bench "${plan}" --iters 50 --json "${out}/${name}.${precision}.bench.json"
    if [ "${have_ort}" = "1" ]; then
      if ! python3 - "${out}/${name}.ort.npz" "${out}/${name}.${precision}.npz" "${precision}" <<'PY'
import sys

import numpy as np

reference, engine = (np.load(path)["images"].astype(np.float64) for path in sys.argv[1:3])
floor = {"fp32": 60.0, "fp16": 40.0, "int8": 25.0, "best": 25.0}[sys.argv[3]]
mse = float(np.mean((reference - engine) ** 2))
psnr = float("inf") if mse == 0 else 10 * np.log10((reference.max() - reference.min()) ** 2 / mse)
print(f"selftest: {sys.argv[2]}: PSNR {psnr:.1f} dB against ONNX Runtime (floor {floor} dB)")
sys.exit(0 if np.isfinite(engine).all() and psnr >= floor else 1)
PY
      then
        failures=$((failures + 1))
      fi
    fi
  done
done

if python3 -c "import torch, onnx, pytest" 2>/dev/null && [ -d tests ]; then
  python3 -m pytest -m device tests || failures=$((failures + 1))
fi

if [ "${failures}" -gt 0 ]; then
  echo "selftest: ${failures} check(s) failed; results in ${out}/" >&2
  exit 1
fi
echo "selftest: all checks passed; results in ${out}/"
