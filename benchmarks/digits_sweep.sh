#!/usr/bin/env bash
# Reproduce edgedit's results on the embedded default (the bundled digits) with the project's own
# commands: teacher pairs from the shipped teacher, the design sweep over DiT-Nano students with
# the three distillation methods, and the teacher's own quality for comparison.
#
#   benchmarks/digits_sweep.sh            # outputs in runs/digits/ (git-ignored)
#
# The teacher ships as edgedit/assets/teacher-digits.safetensors; retrain it with the recipe in
# docs/teacher-digits.md (about 30 minutes on a 2-core CPU).
set -euo pipefail

out="${OUT:-runs/digits}"
edgedit="${EDGEDIT:-edgedit}"
teacher="edgedit/assets/teacher-digits.safetensors"
mkdir -p "${out}"

# 4096 pairs, with 4 trajectory states each for Multi-In-One (resumable: finished shards are kept).
"${edgedit}" pairs generate "${teacher}" -n 4096 --trajectory 4 --shard-size 1024 --batch 128 -o "${out}/pairs"

# Students near 150k and 500k parameters (the teacher has 5.5M: both are under 10% of it), depths
# 2, 4 and 8 at 4 heads, each trained the same way with output, TA and MI1 distillation; the TA
# (DiT-Nano-M/2, 8 blocks x 192) is distilled once for the sweep. Finished candidates are skipped.
"${edgedit}" design sweep --pairs "${out}/pairs" --budget 150k,500k --depths 2,4,8 --heads 4 \
    --methods output,ta,mi1 --ta DiT-Nano-M/2 --steps "${STEPS:-1500}" --batch 64 --lr 1e-3 \
    --eval-samples 1000 -o "${out}/sweep"

# The teacher on the same seeds and metric: 18 Heun steps = 35 network evaluations per image.
"${edgedit}" eval "${teacher}" -n 1000 --steps 18 --sampler heun --json > "${out}/teacher-eval.json"
echo "digits_sweep: results in ${out}/sweep (results.json, pareto.png, principles.md) and ${out}/teacher-eval.json"
