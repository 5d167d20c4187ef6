"""Plots and tables of reproduce/digits_adversarial.sh: the learning curves (FID on sample seeds
100000-100999 against steps and wall-clock, per run), every final student, the fine-tunes' start, the
shipped student and the teacher on five disjoint sets of 1,000 fresh seeds (means, spread, paired
differences with 95% intervals), the classifier's view (confidence, class coverage, label agreement),
and the cost per step.

    python reproduce/digits_adversarial_report.py runs/digits/adversarial -o docs/results-digits
    python reproduce/digits_adversarial_report.py runs/digits/adversarial --best   # a student that beats the
                                                                                    # teacher, or nothing
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from digits_curves_report import fid_of, t95

RUN = re.compile(r"(adversarial|control|screen-w[\d.]+)(?:-seed(\d+))?")


def metric(report: dict, name: str) -> float | None:
    return next((m["value"] for m in report["metrics"] if m["metric"] == name), None)


def load_runs(folder: Path) -> dict[str, dict]:
    """{run: {"kind", "seed", "steps", "fid", "wall_s" (cumulative)}} from each run's eval-STEP.json."""
    runs = {}
    for run in sorted(p for p in folder.iterdir() if p.is_dir() and RUN.fullmatch(p.name)):
        legs = {}
        for line in (run / "wall-seconds.txt").read_text().split("\n") if (run / "wall-seconds.txt").exists() else []:
            if line.strip():
                step, seconds = map(int, line.split())
                legs[step] = seconds
        steps = sorted(int(p.stem.split("-")[1]) for p in run.glob("eval-*.json"))
        wall, total = [], 0
        for step in steps:
            total += legs.get(step, 0)
            wall.append(total)
        kind, seed = RUN.fullmatch(run.name).groups()
        runs[run.name] = {
            "kind": kind,
            "seed": int(seed or 0),
            "steps": steps,
            "wall_s": wall,
            "fid": [fid_of(run / f"eval-{s}.json") for s in steps],
        }
    return runs


def load_sets(folder: Path) -> dict[str, dict[int, dict]]:
    """{model: {first seed: the eval report}} from seed-sets/MODEL-seed-FIRST.json."""
    sets: dict[str, dict[int, dict]] = {}
    for path in sorted((folder / "seed-sets").glob("*-seed-*.json")):
        name, first = re.fullmatch(r"(.+)-seed-(\d+)\.json", path.name).groups()
        sets.setdefault(name, {})[int(first)] = json.loads(path.read_text())
    firsts = set().union(*(s.keys() for s in sets.values())) if sets else set()
    return {name: s for name, s in sets.items() if set(s) == firsts}  # only models on every set


def group(sets: dict[str, dict[int, dict]], pattern: str) -> list[dict[int, float]]:
    """Per-set FIDs of every model whose name matches (one per training seed)."""
    return [{f: fid_of(r) for f, r in s.items()} for name, s in sorted(sets.items()) if re.fullmatch(pattern, name)]


def paired(a: list[dict[int, float]], b: list[dict[int, float]]) -> tuple[float, float, int]:
    """Over the seed sets, mean(a runs) - mean(b runs) on each set: (mean, 95% half-width, sets)."""
    firsts = sorted(set.intersection(*(set(r) for r in a + b)))
    diffs = [statistics.mean(r[f] for r in a) - statistics.mean(r[f] for r in b) for f in firsts]
    return statistics.mean(diffs), t95(len(diffs)) * statistics.stdev(diffs) / len(diffs) ** 0.5, len(diffs)


def equal_wall_step(runs: dict[str, dict], step_cost: dict[str, float]) -> int | None:
    """The control step whose wall time equals the adversarial runs' 4,000 steps (from the quiet step cost)."""
    if "adversarial" not in step_cost or "control" not in step_cost:
        return None
    steps = 4000 * step_cost["adversarial"] / step_cost["control"]
    return int(round(steps / 1000) * 1000)


def load_step_cost(folder: Path) -> dict[str, float]:
    """{method: seconds per 1,000 steps} (mean of the rounds) from step-cost/seconds.txt (200 steps each)."""
    path, seconds = folder / "step-cost" / "seconds.txt", {}
    for line in path.read_text().splitlines() if path.exists() else []:
        method, _, value = line.split()
        seconds.setdefault(method, []).append(float(value) * 1000 / 200)
    return {m: statistics.mean(v) for m, v in seconds.items()}


def best(sets: dict[str, dict[int, dict]]) -> str | None:
    """The final adversarial student with the best five-set mean, if it beats the teacher on the mean
    and on the paired difference (the 95% interval below zero)."""
    if "teacher" not in sets:
        return None
    teacher = group(sets, "teacher")
    finals = {
        name: statistics.mean(fid_of(r) for r in s.values())
        for name, s in sets.items()
        if re.fullmatch(r"adversarial-seed\d+-step-4000", name)
    }
    for name in sorted(finals, key=finals.get):
        mean, half, _ = paired(group(sets, re.escape(name)), teacher)
        if mean + half < 0:
            return name
    return None


def curve_lines(runs: dict[str, dict], sets: dict[str, dict[int, dict]], first: int) -> list[str]:
    steps = sorted({s for r in runs.values() for s in r["steps"]})
    start = sets.get("start", {}).get(first)
    lines = [
        f"FID on the sample seeds {first}-{first + 999} (domain FID, the digits classifier's features), "
        f"every 1,000 steps; step 0 is the starting student's weights (STUDENT) drawing the fine-tunes' noise"
        + (f" ({fid_of(start):.1f})" if start else "")
        + ":",
        "",
        "| run | " + " | ".join(str(s) for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for name, r in runs.items():
        by = dict(zip(r["steps"], r["fid"]))
        lines.append(f"| {name} | " + " | ".join(f"{by[s]:.1f}" if s in by else "-" for s in steps) + " |")
    return lines


def set_lines(sets: dict[str, dict[int, dict]], control_step: int | None) -> list[str]:
    n = len(next(iter(sets.values()))) if sets else 0
    rows = [
        ("adversarial, 4,000 steps", r"adversarial-seed\d+-step-4000"),
        ("control (output), 4,000 steps", r"control-seed\d+-step-4000"),
        ("control (output), 6,000 steps", r"control-seed\d+-step-6000"),
        ("start (the starting student's weights, fine-tunes' noise)", "start"),
        ("the starting student (STUDENT, its own noise)", "shipped"),
        ("teacher (18 Heun steps)", "teacher"),
    ]
    if control_step and control_step not in (4000, 6000):
        rows.insert(2, (f"control (output), {control_step:,} steps", rf"control-seed\d+-step-{control_step}"))
    lines = [
        "",
        f"On {n} disjoint sets of 1,000 fresh sample seeds, FID mean and sd over the sets (runs of one "
        "kind pooled), and the classifier's view (mean over sets and runs):",
        "",
        "| model | runs | FID mean | sd over sets | per run | classifier confidence | class coverage | "
        "label agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, pattern in rows:
        members = [s for name, s in sorted(sets.items()) if re.fullmatch(pattern, name)]
        if not members:
            continue
        per_set = [statistics.mean(fid_of(m[f]) for m in members) for f in members[0]]
        per_run = ", ".join(f"{statistics.mean(fid_of(r) for r in m.values()):.1f}" for m in members)
        view = [
            statistics.mean(metric(r, k) or 0 for m in members for r in m.values())
            for k in ("classifier confidence", "class coverage", "label agreement")
        ]
        lines.append(
            f"| {label} | {len(members)} | {statistics.mean(per_set):.1f} | {statistics.stdev(per_set):.1f} | "
            f"{per_run} | {view[0]:.3f} | {view[1]:.1f} | {view[2]:.3f} |"
        )
    lines += [
        "",
        "Paired differences over the seed sets (each set's mean over runs; negative: the first is better), "
        "95% intervals (t over the sets):",
        "",
    ]
    adversarial = group(sets, r"adversarial-seed\d+-step-4000")
    for label, pattern in (
        ("control at 4,000 steps (equal steps)", r"control-seed\d+-step-4000"),
        *(
            [(f"control at {control_step:,} steps (equal wall time)", rf"control-seed\d+-step-{control_step}")]
            if control_step
            else []
        ),
        ("the start (the starting weights, same noise scheme)", "start"),
        ("the starting student", "shipped"),
        ("the teacher", "teacher"),
    ):
        other = group(sets, pattern)
        if adversarial and other:
            mean, half, k = paired(adversarial, other)
            lines.append(f"- adversarial - {label}: {mean:+.1f} FID (+- {half:.1f}, {k} sets)")
    return lines


def plot(
    runs: dict[str, dict], teacher_fid: float | None, start_fid: float | None, cost: dict[str, float], path: Path
) -> None:
    """FID against steps, and against training cost: steps x the quiet seconds per step of each method
    (the step-cost stage), not the logged wall time, which shared machines and resumed legs distort."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"adversarial": "tab:red", "control": "tab:blue"}
    panels = 2 if cost else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    by_step, by_cost = axes[0][0], (axes[0][1] if cost else None)
    counts: dict[str, int] = {}
    for r in runs.values():
        if r["kind"] not in colors or not r["steps"]:
            continue
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
        steps, fid = ([0, *r["steps"]], [start_fid, *r["fid"]]) if start_fid else (r["steps"], r["fid"])
        style = {"marker": "o", "color": colors[r["kind"]], "alpha": 0.8}
        label = r["kind"] if counts[r["kind"]] == 1 else None
        by_step.plot(steps, fid, label=label, **style)
        if by_cost is not None and r["kind"] in cost:
            by_cost.plot([s * cost[r["kind"]] / 1000 for s in steps], fid, label=label, **style)
    for axis in [a for a in (by_step, by_cost) if a is not None]:
        if teacher_fid:
            axis.axhline(teacher_fid, color="black", linestyle="--", label="teacher (35 evaluations)")
        axis.set_ylabel("FID (seeds 100000-100999)")
        axis.grid(alpha=0.3)
        axis.legend()
    by_step.set_xlabel("fine-tuning steps from the starting student")
    if by_cost is not None:
        by_cost.set_xlabel("training-loop seconds (steps x each method's quiet cost per step)")
    runs_text = ", ".join(f"{n} {kind} run{'s' if n > 1 else ''}" for kind, n in counts.items())
    fig.suptitle(f"Adversarial fine-tuning vs output distillation ({runs_text})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="a folder for adversarial.md and adversarial.png")
    parser.add_argument("--best", action="store_true", help="print the checkpoint that beats the teacher, if any")
    args = parser.parse_args()
    sets = load_sets(args.folder)
    if args.best:
        name = best(sets)
        if name:
            run, _, step = name.rpartition("-step-")
            print(args.folder / run / f"step-{step}.safetensors")
        return
    runs = load_runs(args.folder)
    cost = load_step_cost(args.folder)
    control_step = equal_wall_step(runs, cost)
    first = 100000
    teacher = sets.get("teacher", {}).get(first)
    start = sets.get("start", {}).get(first)
    lines = [
        "# Adversarial fine-tuning on digits (reproduce/digits_adversarial.sh)",
        "",
        *curve_lines(runs, sets, first),
        *set_lines(sets, control_step),
    ]
    if cost:
        lines += [
            "",
            "Seconds per 1,000 steps on a quiet core (200 steps, two interleaved rounds, the training loop "
            "only): "
            + ", ".join(f"{m} {v:.0f} s" for m, v in cost.items())
            + (f"; equal wall time: adversarial 4,000 steps = control {control_step:,}" if control_step else ""),
        ]
    winner = best(sets)
    lines += [
        "",
        "![FID against steps and training cost](adversarial.png)",
        "",
        f"Verdict: {winner} beats the teacher on the five sets (mean and paired difference)."
        if winner
        else "Verdict: no adversarial student beats the teacher on the five sets (mean and paired difference).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "adversarial.md").write_text(text)
        plot(
            runs,
            fid_of(teacher) if teacher else None,
            fid_of(start) if start else None,
            cost,
            args.output / "adversarial.png",
        )


if __name__ == "__main__":
    main()
