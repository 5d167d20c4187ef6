#!/usr/bin/env bash
# Reproduce edgedit's results on the embedded default (the bundled digits) with the project's own
# commands: teacher pairs from the shipped teacher, the design sweep over DiT-Nano students with
# the three distillation methods, the teacher's own quality for comparison, and the published
# tables (docs/results-digits/). The sweep picks the architecture; reproduce/digits_curves.sh then
# trains it at a fair budget and ships the student (edgedit/assets/student-digits.safetensors).
#
#   reproduce/digits_sweep.sh   # as published (1000 steps per student): about 80 minutes on a 2-core CPU
#   outputs in runs/digits/ (git-ignored); it rewrites docs/results-digits/
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
# (DiT-Nano-M/2: 8 blocks x 192, 5.4M parameters at this geometry, one step) is distilled once for
# the sweep. Finished candidates are skipped.
"${edgedit}" design sweep --pairs "${out}/pairs" --budget 150k,500k --depths 2,4,8 --heads 4 \
    --methods output,ta,mi1 --ta DiT-Nano-M/2 --steps "${STEPS:-1000}" --batch 64 --lr 1e-3 \
    --eval-samples 1000 -o "${out}/sweep"
# One latency column from this machine, alternating architectures (the sweep timed each one while busy).
"${edgedit}" design retime -o "${out}/sweep" --rounds 5

# Run-to-run noise: the 4-block students of both budgets again with seeds 1 and 2, all three methods
# (the TA is the sweep's), so that method differences can be read against seed differences.
for seed in 1 2; do
    "${edgedit}" design sweep --pairs "${out}/pairs" --budget 150k,500k --depths 4 --heads 4 \
        --methods output,ta,mi1 --ta "${out}/sweep/ta.safetensors" --steps "${STEPS:-1000}" --batch 64 --lr 1e-3 \
        --eval-samples 1000 --seed "${seed}" -o "${out}/seed-${seed}"
done

# The teacher on the same seeds and metric: 18 Heun steps = 35 network evaluations per image.
"${edgedit}" eval "${teacher}" -n 1000 --steps 18 --sampler heun --json > "${out}/teacher-eval.json"
# The TA (one step, teacher-sized) on the same seeds and metric: what one step costs at full size.
"${edgedit}" eval "${out}/sweep/ta.safetensors" -n 1000 --json > "${out}/ta-eval.json"

# The sweep's best architecture and method (digits_curves.sh trains it longer and ships it).
"${edgedit}" design pick --results "${out}/sweep/results.json"
docs="docs/results-digits"
mkdir -p "${docs}"
cp "${out}/sweep/results.csv" "${out}/sweep/results.json" "${out}/sweep/pareto.png" "${out}/sweep/principles.md" \
    "${out}/teacher-eval.json" "${out}/ta-eval.json" "${docs}/"
for seed in 1 2; do cp "${out}/seed-${seed}/results.csv" "${docs}/seed-${seed}.csv"; done
# The teacher's samples (seeds 0-31, label = seed % 10); digits_curves.sh adds the student's on the same seeds.
"${edgedit}" sample edgedit/assets/teacher-digits.safetensors -n 32 --steps 18 -o "${docs}/teacher-samples.png"
echo "digits_sweep: results in ${out}/sweep and ${docs}/"
