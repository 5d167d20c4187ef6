#!/usr/bin/env bash
# The test suite on every CPU kernel path that torch and numpy dispatch to, so that a result tuned to
# one CPU's rounding shows up here rather than on a user's machine: torch forced onto each of its
# ATen kernel paths (ATEN_CPU_CAPABILITY=default|avx2|avx512: generic, AVX2 and AVX-512 kernels) and
# numpy with its AVX-512 dispatch turned off (NPY_DISABLE_CPU_FEATURES), each run in random order
# (pytest-randomly), in two processes (pytest-xdist) and with HOME an empty read-only folder that
# must stay empty.
# Slow (the whole suite five times): never part of CI. A path this CPU lacks runs the best it has;
# each line says which torch actually used.
#
#   tests/kernel_paths.sh [RESULTS.md]     # default: print the table only
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
python="${PYTHON:-.venv/bin/python}"
results="${1:-}"

# numpy's dispatch targets that use AVX-512 (numpy 2: X86_V4, AVX512_*; numpy 1: AVX512*).
npy_avx512=$("${python}" -c '
try:
    from numpy._core._multiarray_umath import __cpu_dispatch__
except ImportError:
    from numpy.core._multiarray_umath import __cpu_dispatch__
print(" ".join(d for d in __cpu_dispatch__ if "AVX512" in d or d == "X86_V4"))')

home=$(mktemp -d)
chmod 555 "${home}"
trap 'chmod 755 "${home}"; rmdir "${home}"' EXIT

settings=("native" "ATEN_CPU_CAPABILITY=default" "ATEN_CPU_CAPABILITY=avx2" "ATEN_CPU_CAPABILITY=avx512"
          "NPY_DISABLE_CPU_FEATURES=${npy_avx512}")
table="| setting | torch kernels | passed | failed | skipped | errors | seconds |
|---|---|---|---|---|---|---|"
status=0
for setting in "${settings[@]}"; do
    env_args=()
    [[ "${setting}" == native ]] || env_args=("${setting}")
    capability=$(env "${env_args[@]}" "${python}" -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')
    started=${SECONDS}
    log=$(env "${env_args[@]}" HOME="${home}" "${python}" -m pytest -q -p no:cacheprovider -p randomly -n 2 2>&1)
    rc=$?
    [[ ${rc} -eq 0 ]] || status=1
    if [[ -n "$(ls -A "${home}")" ]]; then  # root ignores the mode bits: look
        echo "kernel_paths: the suite wrote into HOME under ${setting}: $(find "${home}" -mindepth 1 -maxdepth 1 -printf "%f ")" >&2
        status=1
    fi
    summary=$(printf '%s\n' "${log}" | tail -n 1)
    count() { printf '%s\n' "${summary}" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
    table+="
| ${setting} | ${capability} | $(count passed) | $(count failed) | $(count skipped) | $(count error) | $((SECONDS - started)) |"
    if [[ ${rc} -ne 0 ]]; then
        printf '%s\n' "${log}" | grep -E '^(FAILED|ERROR)' >&2
    fi
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
header="CPU: ${cpu}; $(nproc) cores; $(${python} -c 'import numpy, torch, sys; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}")'); $(date -u +%Y-%m-%d)"
printf '%s\n\n%s\n' "${header}" "${table}"
if [[ -n "${results}" ]]; then
    printf '%s\n\n%s\n' "${header}" "${table}" > "${results}"
fi
exit ${status}
