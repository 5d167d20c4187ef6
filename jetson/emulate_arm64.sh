#!/usr/bin/env bash
# The device side on 64-bit Arm, by emulation: proof that the torch-free half of edgedit (numpy, ONNX
# Runtime, pillow, the samplers, the bench harness) runs on the Jetson's CPU architecture and gives
# the same results as on x86-64. No Jetson needed: an arm64 Debian root (debootstrap, from the mirror
# apt already uses) runs under qemu-user through binfmt_misc.
#
# On the x86-64 workstation it exports the shipped digits student (FP32, FP16, INT8 Q/DQ ONNX), then,
# in the arm64 root, installs edgedit's core package (not the dev extra: numpy, typer, rich, pillow,
# pydantic) with ONNX Runtime from PyPI's manylinux aarch64 wheels (downloaded here, installed there
# offline), and runs `edgedit sample` and `edgedit bench` on each file. The same commands run here;
# then the noise of the same seeds must be bit-identical and the images within a tolerance per
# precision (printed with the numbers; written to WORK/compare.json).
#
#   apt-get install qemu-user-static debootstrap binfmt-support     # once, as root
#   jetson/emulate_arm64.sh [WORK]                    # as root; WORK default /var/tmp/edgedit-arm64
#
# WORK lies outside the checkout: the root holds a whole Debian with /proc mounted while it runs.
#
# Slow (emulated: minutes for the root, a few minutes per command); never part of CI. Re-runs reuse
# the root, the wheels and the exports. Needs the workstation install (.venv with the dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/var/tmp/edgedit-arm64}"
root="${work}/rootfs"
venv="${VENV:-.venv}"
suite="${SUITE:-bookworm}"  # Debian 12: Python 3.11 (JetPack 6 has 3.10; both have manylinux aarch64 wheels)

die() { echo "emulate_arm64: $*" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || die "run it as root (debootstrap, chroot and binfmt_misc need it)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
[[ -x /usr/bin/qemu-aarch64-static ]] || die "qemu-aarch64-static is missing: apt-get install qemu-user-static"
[[ -x "${venv}/bin/edgedit" ]] || die "no workstation install at ${venv}: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'"

# arm64 binaries run through qemu via binfmt_misc (mounted and registered if this machine has not yet).
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64

# The Debian mirror apt already uses (deb822 .sources or one-line .list).
mirror=$( (grep -shoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/* /etc/apt/sources.list || true) \
    | grep -v security | head -n 1 | awk '{print $2}')
[[ -n "${mirror}" ]] || die "found no Debian mirror in /etc/apt/sources*"

mkdir -p "${work}/models" "${work}/wheels" "${work}/x86" "${work}/arm64"
if [[ ! -x "${root}/usr/bin/python3" ]]; then
    echo "== arm64 ${suite} root from ${mirror} (emulated second stage: several minutes)"
    rm -rf "${root}"
    started=${SECONDS}
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv "${suite}" "${root}" "${mirror}"
    echo "rootfs_seconds $((SECONDS - started))" > "${work}/rootfs-seconds.txt"
fi
# /proc and /dev inside the root while it runs (CPU count, memory, random devices), gone afterwards.
mount -t proc proc "${root}/proc"
mount --bind /dev "${root}/dev"
trap 'umount "${root}/proc" "${root}/dev"' EXIT
pyver=$(chroot "${root}" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

echo "== x86-64: the shipped student as FP32, FP16 and INT8 ONNX"
student=edgedit/assets/student-digits.safetensors
m="${work}/models"
[[ -s "${m}/student.fp32.onnx" ]] || "${venv}/bin/edgedit" export "${student}" -o "${m}/student.fp32.onnx" --dynamic-batch 1:8:8
[[ -s "${m}/student.fp16.onnx" ]] || "${venv}/bin/edgedit" export "${student}" -o "${m}/student.fp16.onnx" --dynamic-batch 1:8:8 --precision fp16
[[ -s "${m}/student.int8.onnx" ]] || "${venv}/bin/edgedit" quantize "${m}/student.fp32.onnx" -o "${m}/student.int8.onnx"

echo "== wheels for linux aarch64, Python ${pyver}: edgedit's core and ONNX Runtime"
rm -f "${work}"/wheels/edgedit-*.whl
"${venv}/bin/pip" wheel -q --no-deps -w "${work}/wheels" .
"${venv}/bin/pip" download -q --only-binary=:all: --python-version "${pyver}" --implementation cp \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
    -d "${work}/wheels" "${work}"/wheels/edgedit-*.whl onnxruntime

echo "== arm64: install (offline, from those wheels)"
rm -rf "${root}/opt/work"
mkdir -p "${root}/opt/work"
cp -r "${work}/wheels" "${work}/models" "${root}/opt/work/"
if [[ ! -x "${root}/opt/venv/bin/edgedit" ]]; then
    chroot "${root}" python3 -m venv /opt/venv
fi
chroot "${root}" /opt/venv/bin/pip install -q --no-index --find-links /opt/work/wheels --force-reinstall edgedit onnxruntime
chroot "${root}" /opt/venv/bin/python -c 'import platform, torch' 2>/dev/null && die "torch is in the arm64 venv"

# One side's run: noise of seeds 0-15 (both schemes), a grid + npz and a short bench per precision.
run_side() {  # run_side NAME PREFIX-COMMAND... (the prefix runs a command in that side's environment)
    local name=$1 out
    shift
    out=$1; shift
    "$@" python -c "
import hashlib, json, sys
import numpy as np
from edgedit.runtime.noise import noise_from_seeds
print(json.dumps({s: hashlib.sha256(noise_from_seeds(range(16), (1, 16, 16), s).tobytes()).hexdigest()
                  for s in ('pcg64', 'pcg64-keyed')}))" > "${out}/noise.json"
    local precision started
    for precision in fp32 fp16 int8; do
        started=${SECONDS}
        "$@" edgedit sample "MODELS/student.${precision}.onnx" -n 16 --batch 8 --backend onnxruntime --provider cpu \
            -o "OUT/grid-${precision}.png" --npz "OUT/images-${precision}.npz" --force
        echo "${precision} sample_seconds $((SECONDS - started))" >> "${out}/seconds.txt"
    done
    started=${SECONDS}
    "$@" edgedit bench MODELS/student.fp32.onnx MODELS/student.fp16.onnx MODELS/student.int8.onnx \
        --backend onnxruntime --provider cpu --batch 1,8 --warmup 3 --iters 30 --rounds 3 --json OUT/bench.json --force
    echo "bench_seconds $((SECONDS - started))" >> "${out}/seconds.txt"
    echo "${name}: done"
}

# The x86 side runs in the workstation venv with the same paths as the arm64 root (MODELS, OUT).
x86() {
    local args=() a
    for a in "$@"; do a=${a//MODELS/${m}}; args+=("${a//OUT/${work}/x86}"); done
    case "${args[0]}" in
        python) "${venv}/bin/python" "${args[@]:1}" ;;
        *) "${venv}/bin/${args[0]}" "${args[@]:1}" ;;
    esac
}
arm() {
    local args=() a
    for a in "$@"; do a=${a//MODELS//opt/work/models}; args+=("${a//OUT//opt/work/out}"); done
    chroot "${root}" /usr/bin/env HOME=/tmp "/opt/venv/bin/${args[0]}" "${args[@]:1}"
}

rm -f "${work}/x86/seconds.txt" "${work}/arm64/seconds.txt"
echo "== x86-64 run"
run_side x86-64 "${work}/x86" x86
echo "== arm64 run (emulated)"
mkdir -p "${root}/opt/work/out"
started=${SECONDS}
run_side arm64 "${root}/opt/work/out" arm
echo "arm64_total_seconds $((SECONDS - started))" >> "${root}/opt/work/out/seconds.txt"
cp "${root}"/opt/work/out/* "${work}/arm64/"

echo "== comparison"
"${venv}/bin/python" - "${work}" <<'PY'
import json, platform, sys
from pathlib import Path

import numpy as np

work = Path(sys.argv[1])
x86, arm = work / "x86", work / "arm64"
noise = {"identical": json.loads((x86 / "noise.json").read_text()) == json.loads((arm / "noise.json").read_text())}
# Per precision: the worst pixel difference, also in grey levels of an 8-bit image (2/255 on [-1, 1]),
# and each side's PSNR against the x86-64 FP32 images (peak: their range).
# The same graph runs on other kernels: ONNX Runtime's MLAS uses AVX-512 here and NEON there (other
# FMA use and blocking), so FP32 differs in the last bits (float32 eps 1.2e-7 over sums of 80-320 terms
# of order-1 values: a few 1e-6; bound 1e-4); an FP16 graph rounds every op to FP16 (2^-11 = 4.9e-4
# relative), where NEON computes in FP16 natively and x86 converts to FP32, so whole FP16 ulps of
# outputs of order 2 differ (bound: 4 grey levels, 0.031). INT8 adds requantization on top of FP16: a
# value on a rounding boundary moves one INT8 step of its layer, and the steps compound through the
# blocks, so the two sides differ as two draws of the file's quantization error do. Each stays within
# the error the file records against FP32 (`quantization.max_abs_error`, on held-out inputs), so the
# two differ by at most twice that (the triangle inequality): that is the INT8 bound.
from edgedit.contract.spec import read_model

recorded = read_model(work / "models" / "student.int8.onnx")[0].extra["quantization"]["max_abs_error"]
bounds = {"fp32": 1e-4, "fp16": 4 * 2 / 255, "int8": 2 * recorded}
reference = np.load(x86 / "images-fp32.npz")["images"].astype(np.float64)
peak = float(reference.max() - reference.min())


def psnr(images):
    return float(10 * np.log10(peak**2 / np.mean((images.astype(np.float64) - reference) ** 2)))


images = {}
for precision, bound in bounds.items():
    a, b = (np.load(side / f"images-{precision}.npz") for side in (x86, arm))
    diff = float(np.abs(a["images"].astype(np.float64) - b["images"]).max())
    images[precision] = {"max_abs_diff": diff, "grey_levels": diff / (2 / 255), "bound": bound, "within": diff <= bound,
                         "seeds_equal": bool((a["seeds"] == b["seeds"]).all() and (a["labels"] == b["labels"]).all()),
                         "psnr_vs_x86_fp32_db": {"x86": psnr(a["images"]) if precision != "fp32" else None,
                                                 "arm64": psnr(b["images"])}}
seconds = {side.name: (side / "seconds.txt").read_text().split("\n") for side in (x86, arm)}
result = {"host": platform.machine(), "noise": noise, "images": images, "int8_recorded_max_abs_error": recorded,
          "seconds": seconds}
(work / "compare.json").write_text(json.dumps(result, indent=1))
print(f"noise of seeds 0-15, both schemes: {'bit-identical' if noise['identical'] else 'DIFFERENT'}")
print("| precision | max abs diff | grey levels | bound | within | PSNR vs x86 FP32: x86 / arm64 (dB) |")
print("|---|---|---|---|---|---|")
for precision, r in images.items():
    x, a = r["psnr_vs_x86_fp32_db"]["x86"], r["psnr_vs_x86_fp32_db"]["arm64"]
    print(f"| {precision} | {r['max_abs_diff']:.3g} | {r['grey_levels']:.3g} | {r['bound']:.3g} | {r['within']} | "
          f"{'-' if x is None else f'{x:.1f}'} / {a:.1f} |")
sys.exit(0 if noise["identical"] and all(r["within"] and r["seeds_equal"] for r in images.values()) else 1)
PY
