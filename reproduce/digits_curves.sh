#!/usr/bin/env bash
# Learning curves of the three distillation methods at a fair budget, on the embedded default
# (the bundled digits), with the project's own commands: the shipped architecture (4 blocks x 80,
# 4 heads) distilled from the same 4,096 teacher pairs as the sweep (reproduce/digits_sweep.sh),
# evaluated every 1,000 steps on the sweep's evaluation (1,000 samples, seeds 0-999, domain FID).
#
#   reproduce/digits_curves.sh                   # every run, then the report
#   reproduce/digits_curves.sh output:0 mi1:1    # only these runs (METHOD:SEED); for parallel workers
#   reproduce/digits_curves.sh output-16k:0      # output distillation on 16,384 pairs (more data)
#   reproduce/digits_curves.sh report            # the seed-set evaluations, the plots and tables
#   reproduce/digits_curves.sh step-cost         # seconds per step of each method, on a quiet machine
#   reproduce/digits_curves.sh ship              # the best final student into edgedit/assets/
#
# Runs: output and mi1 with seeds 0, 1 and 2 up to 8,000 steps, ta with seed 0 up to 4,000 steps (a
# TA step costs 3.4x), the TA itself (DiT-Nano-M/2, one step) distilled once with the output loss for
# TA_STEPS steps; output-16k: the same output recipe on 16,384 pairs (the first 4,096 are the sweep's)
# to 4,000 steps, to see whether the pairs limit the student. Resumable at every level: each
# 1,000-step leg continues from the run's training state, and finished legs (their eval JSON exists)
# are skipped. About 7 hours of one quiet CPU core (an estimate from the measured step costs; the
# published run took longer, two workers sharing the 2-core VM with other jobs); outputs in
# runs/digits/curves/ (git-ignored), plots and tables into docs/results-digits/, the shipped
# student into edgedit/assets/.
set -euo pipefail

out="${OUT:-runs/digits}"
edgedit="${EDGEDIT:-edgedit}"
python="${PYTHON:-python3}"
teacher="edgedit/assets/teacher-digits.safetensors"
every=1000
curves="${out}/curves"
student=(--student DiT-Nano-XS/2 --depth 4 --width 80 --heads 4)
recipe=(--batch 64 --lr 1e-3 --ema 0.9999 --checkpoint-every 500)
mkdir -p "${curves}"

pairs4k() {  # the sweep's 4,096 pairs (resumable: finished shards are kept)
    "${edgedit}" pairs generate "${teacher}" -n 4096 --trajectory 4 --shard-size 1024 --batch 128 -o "${out}/pairs"
}

pairs16k() {  # 16,384 pairs, seeds 0-16383: the sweep's 4,096 shards are reused (verified by checksum)
    local dir="${out}/pairs-16k"
    if [[ ! -e "${dir}/manifest.json" ]]; then
        mkdir -p "${dir}"
        for shard in "${out}"/pairs/shard-*; do [[ -e "${dir}/$(basename "${shard}")" ]] || cp -r "${shard}" "${dir}/"; done
    fi
    "${edgedit}" pairs generate "${teacher}" -n 16384 --trajectory 4 --shard-size 1024 --batch 128 -o "${dir}"
}

# One leg: distil up to STEP (resuming the run's state), keep that checkpoint, evaluate it.
leg() {  # leg NAME STEP [--pairs DIR] DISTILL-ARGS...
    local step=$2 dir="${curves}/$1" pairs="${out}/pairs"
    shift 2
    if [[ "${1:-}" == --pairs ]]; then pairs=$2; shift 2; fi
    [[ -s "${dir}/eval-${step}.json" ]] && return 0
    mkdir -p "${dir}"
    local resume=()
    [[ -e "${dir}/student.train-state.safetensors" ]] && resume=(--resume)
    local started=${SECONDS}
    "${edgedit}" distill --pairs "${pairs}" "$@" "${recipe[@]}" --steps "${step}" "${resume[@]}" \
        -o "${dir}/student.safetensors"
    echo "${step} $((SECONDS - started))" >> "${dir}/wall-seconds.txt"
    cp "${dir}/student.safetensors" "${dir}/step-${step}.safetensors"
    "${edgedit}" eval "${dir}/step-${step}.safetensors" -n 1000 --json > "${dir}/eval-${step}.json.partial"
    mv "${dir}/eval-${step}.json.partial" "${dir}/eval-${step}.json"
}

ta_model() {  # the teaching assistant, distilled once (output loss), shared by every ta run
    local dir="${curves}/ta-assistant" steps="${TA_STEPS:-4000}"
    [[ -s "${dir}/eval.json" ]] && return 0
    mkdir -p "${dir}"
    local resume=()
    [[ -e "${dir}/ta.train-state.safetensors" ]] && resume=(--resume)
    "${edgedit}" distill --pairs "${out}/pairs" --student DiT-Nano-M/2 --method output "${recipe[@]}" \
        --steps "${steps}" "${resume[@]}" -o "${dir}/ta.safetensors"
    "${edgedit}" eval "${dir}/ta.safetensors" -n 1000 --json > "${dir}/eval.json.partial"
    mv "${dir}/eval.json.partial" "${dir}/eval.json"
}

run() {  # run METHOD:SEED
    local method=${1%%:*} seed=${1##*:} last=8000 extra=() pairs=()
    pairs4k
    case "${method}" in
        output) ;;
        mi1) ;;
        ta) last=4000; ta_model; extra=(--ta "${curves}/ta-assistant/ta.safetensors") ;;
        output-16k) last=4000; pairs16k; pairs=(--pairs "${out}/pairs-16k") ;;  # vs output's 4,000 steps
        *) echo "digits_curves: unknown run '$1' (METHOD:SEED, METHOD one of output, mi1, ta, output-16k)" >&2; exit 2 ;;
    esac
    for ((step = every; step <= last; step += every)); do
        leg "${method}-seed${seed}" "${step}" "${pairs[@]}" "${student[@]}" --method "${method%-16k}" --seed "${seed}" \
            "${extra[@]}"
    done
}

# The evaluation's own noise and a paired comparison: every run's 4,000- and 8,000-step students and
# the teacher on five disjoint sets of 1,000 sample seeds (0-999 is the legs' own set, re-run here so
# that every number of the table comes from one code version).
seed_sets() {
    local model name first file
    for model in "${curves}"/*-seed*/step-4000.safetensors "${curves}"/*-seed*/step-8000.safetensors "${teacher}"; do
        [[ -e "${model}" ]] || continue
        name="$(basename "$(dirname "${model}")")-$(basename "${model}" .safetensors)"
        [[ "${model}" == "${teacher}" ]] && name=teacher
        for first in 0 1000 2000 3000 4000; do
            file="${curves}/seed-sets/${name}-seed-${first}.json"
            [[ -s "${file}" ]] && continue
            mkdir -p "${curves}/seed-sets"
            "${edgedit}" eval "${model}" -n 1000 --seed "${first}" --json > "${file}.partial"
            mv "${file}.partial" "${file}"
        done
    done
}

# What a step costs on a quiet machine (the curves' legs shared the CPU with other jobs): 200 steps of
# each method from scratch, in two interleaved rounds; the training loop's own time (the student's
# train_seconds_last_session), so start-up is not counted. Run it with nothing else on the machine.
step_cost() {
    local dir="${curves}/step-cost" round method extra seconds
    [[ -s "${dir}/seconds.txt" ]] && return 0
    pairs4k
    ta_model
    mkdir -p "${dir}"
    rm -f "${dir}/seconds.txt.partial"
    for round in 1 2; do
        for method in output ta mi1; do
            extra=()
            [[ "${method}" == ta ]] && extra=(--ta "${curves}/ta-assistant/ta.safetensors")
            "${edgedit}" distill --pairs "${out}/pairs" "${student[@]}" --method "${method}" "${extra[@]}" \
                "${recipe[@]}" --steps 200 -o "${dir}/${method}-${round}.safetensors"
            seconds=$("${edgedit}" info --json "${dir}/${method}-${round}.safetensors" | "${python}" -c \
                'import json, sys; print(json.load(sys.stdin)["provenance"]["train_seconds_last_session"])')
            echo "${method} ${round} ${seconds}" >> "${dir}/seconds.txt.partial"
        done
    done
    mv "${dir}/seconds.txt.partial" "${dir}/seconds.txt"
}

report() {
    seed_sets
    "${python}" reproduce/digits_curves_report.py "${curves}" -o docs/results-digits
}

# The shipped student: of the students at the last step, the one with the best mean FID over the five
# seed sets, evaluated on seeds 0-999 and copied into the package with that evaluation in its provenance.
ship() {
    seed_sets
    local best
    best=$("${python}" reproduce/digits_curves_report.py "${curves}" --best)
    "${edgedit}" eval "${best}" -n 1000 --save edgedit/assets/student-digits.safetensors --json \
        > docs/results-digits/student-eval.json.partial
    mv docs/results-digits/student-eval.json.partial docs/results-digits/student-eval.json
    "${edgedit}" sample edgedit/assets/student-digits.safetensors -n 32 -o docs/results-digits/student-samples.png
    echo "digits_curves: shipped ${best} as edgedit/assets/student-digits.safetensors"
}

runs=("$@")
[[ ${#runs[@]} -gt 0 ]] || runs=(output:0 output:1 output:2 mi1:0 mi1:1 mi1:2 ta:0 output-16k:0 step-cost report ship)
for r in "${runs[@]}"; do
    case "${r}" in
        report) report ;;
        ship) ship ;;
        step-cost) step_cost ;;
        *) run "${r}" ;;
    esac
done
