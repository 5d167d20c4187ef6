#!/usr/bin/env bash
# A one-step student that beats its teacher? The adversarial second stage (`edgedit distill --method
# adversarial`) against output-only fine-tuning, on the embedded default (the bundled digits), with the
# project's own commands. Both start from the shipped student and learn from the same 4,096 teacher pairs
# (the curves' pairs, regenerated if missing); the adversarial stage also learns against the real
# training digits (never the held-out split behind FID).
#
#   reproduce/digits_adversarial.sh                     # every run, then the report
#   reproduce/digits_adversarial.sh adversarial:0 control:1  # only these runs (METHOD:SEED), for workers
#   reproduce/digits_adversarial.sh screen               # adversarial weights 0.1, 0.3, 1 and 3 (seed 0)
#   reproduce/digits_adversarial.sh step-cost            # seconds per step of both, on a quiet machine
#   reproduce/digits_adversarial.sh report               # five seed sets, plots and tables
#   reproduce/digits_adversarial.sh ship                 # the best final student into edgedit/assets/
#
# The study of 2026-12-04 started from the output-distilled student of commit 5c65653, shipped until then:
#   git show 5c65653:edgedit/assets/student-digits.safetensors > runs/output-student.safetensors
#   STUDENT=runs/output-student.safetensors reproduce/digits_adversarial.sh ...   (`ship` still writes the asset)
#
# Runs: adversarial (weight 1, chosen from the screen) and control (output distillation, the same
# settings) with training seeds 0, 1, 2, evaluated every 1,000 steps on the sample seeds 100000-100999
# (seeds no run, sweep or shipping choice has used: the pairs use 0-4095, the older evaluations 0-4999),
# adversarial to 4,000 steps and control to 6,000 (more steps for the same wall time, a step of it being
# cheaper). The report evaluates every final student, the shipped student and the teacher on five
# disjoint sets of 1,000 fresh seeds (100000-104999). Resumable at every level (each leg continues from its
# training state; finished legs and evaluations are skipped). Outputs in runs/digits/adversarial/
# (git-ignored); plots and tables into docs/results-digits/adversarial*. The shipped student and the
# teacher draw their noise with their own (older) scheme, the fine-tunes with the pairs': `start` is the
# shipped weights under the fine-tunes' scheme, their step 0 (the same weights, other noise draws).
set -euo pipefail

out="${OUT:-runs/digits}"
edgedit="${EDGEDIT:-edgedit}"
python="${PYTHON:-python3}"
teacher="edgedit/assets/teacher-digits.safetensors"
asset="edgedit/assets/student-digits.safetensors"  # what `ship` replaces
student="${STUDENT:-${asset}}"  # the fine-tunes' start
runs="${out}/adversarial"
every=1000
first_seed=100000
recipe=(--student "${student}" --batch 64 --lr 2e-4 --ema 0.999 --checkpoint-every 250)
adversarial=(--method adversarial --real digits --disc-lr 2e-4)
mkdir -p "${runs}"

pairs() {  # the curves' 4,096 pairs (resumable: finished shards are kept); a complete store is only read
    grep -qs '"complete": true' "${out}/pairs/manifest.json" && return 0
    "${edgedit}" pairs generate "${teacher}" -n 4096 --trajectory 4 --shard-size 1024 --batch 128 -o "${out}/pairs"
}

evaluate() {  # evaluate MODEL SEED FILE: one evaluation, written whole or not at all
    [[ -s "$3" ]] && return 0
    "${edgedit}" eval "$1" -n 1000 --seed "$2" --json > "$3.partial"
    mv "$3.partial" "$3"
}

leg() {  # leg NAME STEP DISTILL-ARGS...: distil up to STEP (resuming), keep that checkpoint, evaluate it
    local dir="${runs}/$1" step=$2
    shift 2
    mkdir -p "${dir}"
    if [[ ! -s "${dir}/step-${step}.safetensors" ]]; then
        local resume=()
        [[ -e "${dir}/student.train-state.safetensors" ]] && resume=(--resume)
        local started=${SECONDS}
        "${edgedit}" distill --pairs "${out}/pairs" "$@" "${recipe[@]}" --steps "${step}" "${resume[@]}" \
            -o "${dir}/student.safetensors"
        echo "${step} $((SECONDS - started))" >> "${dir}/wall-seconds.txt"
        cp "${dir}/student.safetensors" "${dir}/step-${step}.safetensors"
    fi
    evaluate "${dir}/step-${step}.safetensors" "${first_seed}" "${dir}/eval-${step}.json"
}

run() {  # run METHOD:SEED
    local method=${1%%:*} seed=${1##*:} last args
    pairs
    case "${method}" in
        adversarial) last=4000; args=("${adversarial[@]}" --adv-weight 1) ;;
        control) last=6000; args=(--method output) ;;
        *) echo "digits_adversarial: unknown run '$1' (METHOD:SEED, METHOD adversarial or control)" >&2; exit 2 ;;
    esac
    for ((step = every; step <= last; step += every)); do
        leg "${method}-seed${seed}" "${step}" "${args[@]}" --seed "${seed}"
    done
}

screen() {  # the adversarial weight, seed 0, to 2,000 steps
    local weight step
    pairs
    for weight in 0.1 0.3 1 3; do
        for ((step = every; step <= 2000; step += every)); do
            leg "screen-w${weight}" "${step}" "${adversarial[@]}" --adv-weight "${weight}" --seed 0
        done
    done
}

step_cost() {  # 200 steps of each from the shipped student, two interleaved rounds; the loop's own seconds
    local dir="${runs}/step-cost" round method args seconds
    [[ -s "${dir}/seconds.txt" ]] && return 0
    pairs
    mkdir -p "${dir}"
    rm -f "${dir}/seconds.txt.partial"
    for round in 1 2; do
        for method in adversarial control; do
            args=(--method output)
            [[ "${method}" == adversarial ]] && args=("${adversarial[@]}" --adv-weight 1)
            "${edgedit}" distill --pairs "${out}/pairs" "${args[@]}" "${recipe[@]}" --steps 200 --force \
                -o "${dir}/${method}-${round}.safetensors"
            seconds=$("${edgedit}" info --json "${dir}/${method}-${round}.safetensors" | "${python}" -c \
                'import json, sys; print(json.load(sys.stdin)["provenance"]["train_seconds_last_session"])')
            echo "${method} ${round} ${seconds}" >> "${dir}/seconds.txt.partial"
        done
    done
    mv "${dir}/seconds.txt.partial" "${dir}/seconds.txt"
}

start() {  # the shipped weights drawing the fine-tunes' noise (the pairs' scheme): their step 0
    local file="${runs}/start/student.safetensors"
    [[ -s "${file}" ]] && return 0
    mkdir -p "${runs}/start"
    "${python}" - "${student}" "${out}/pairs" "${file}" <<'PY'
import sys

from edgedit.data.pairs import PairsStore
from edgedit.models.checkpoint import load_model, save_model

net, info = load_model(sys.argv[1])
net.noise = PairsStore(sys.argv[2]).manifest["sampler"]["noise"]  # what `distill` gives a student of these pairs
save_model(net, sys.argv[3], provenance={**info.provenance, "note": "the shipped weights, the pairs' noise scheme"})
PY
}

seed_sets() {  # the final students (control also at 4,000 and 5,000 steps: equal steps and equal wall time),
    local model name first  # the fine-tunes' start, the shipped student and the teacher, on five sets of fresh seeds
    start
    for model in "${runs}"/adversarial-seed*/step-4000.safetensors "${runs}"/control-seed*/step-[456]000.safetensors \
                 "${runs}/start/student.safetensors" "${student}" "${teacher}"; do
        [[ -e "${model}" ]] || continue
        name="$(basename "$(dirname "${model}")")-$(basename "${model}" .safetensors)"
        [[ "${model}" == "${runs}/start/student.safetensors" ]] && name=start
        [[ "${model}" == "${student}" ]] && name=shipped
        [[ "${model}" == "${teacher}" ]] && name=teacher
        mkdir -p "${runs}/seed-sets"
        for ((first = first_seed; first < first_seed + 5000; first += 1000)); do
            evaluate "${model}" "${first}" "${runs}/seed-sets/${name}-seed-${first}.json"
        done
    done
}

report() {
    seed_sets
    "${python}" reproduce/digits_adversarial_report.py "${runs}" -o docs/results-digits
}

ship() {  # the final adversarial student with the best five-set mean, if it beats the teacher there
    seed_sets
    local best
    best=$("${python}" reproduce/digits_adversarial_report.py "${runs}" --best)
    if [[ -z "${best}" ]]; then
        echo "digits_adversarial: no adversarial student beats the teacher on the five seed sets; nothing shipped"
        return 0
    fi
    "${edgedit}" eval "${best}" -n 1000 --seed "${first_seed}" --save "${asset}" --force --json \
        > docs/results-digits/student-eval.json.partial
    mv docs/results-digits/student-eval.json.partial docs/results-digits/student-eval.json
    "${edgedit}" sample "${asset}" -n 32 -o docs/results-digits/student-samples.png --force
    echo "digits_adversarial: shipped ${best} as ${asset}"
}

todo=("$@")
[[ ${#todo[@]} -gt 0 ]] || todo=(screen adversarial:0 adversarial:1 adversarial:2 control:0 control:1 control:2
                                 step-cost report)
for r in "${todo[@]}"; do
    case "${r}" in
        screen) screen ;;
        step-cost) step_cost ;;
        report) report ;;
        ship) ship ;;
        *) run "${r}" ;;
    esac
done
