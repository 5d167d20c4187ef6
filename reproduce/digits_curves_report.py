"""Plots and tables of reproduce/digits_curves.sh: FID against steps and wall-clock per method
and seed, the table at the last common step (mean and spread), the wall-clock per 1,000 steps,
and from the seed sets (each final student and the teacher on five disjoint sets of 1,000 sample
seeds) the evaluation's own noise, the methods' paired differences and the best student.

    python reproduce/digits_curves_report.py runs/digits/curves -o docs/results-digits
    python reproduce/digits_curves_report.py runs/digits/curves --best   # prints its checkpoint's path
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path


def fid_of(path: Path | dict) -> float:
    """The domain FID of an `edgedit eval --json` report (a file or its parsed JSON)."""
    report = path if isinstance(path, dict) else json.loads(path.read_text())
    return next(m["value"] for m in report["metrics"] if m["metric"] == "FID")


def load_runs(curves: Path) -> dict[str, dict]:
    """{run name: {"method", "seed", "steps": [...], "fid": [...], "wall_s": [...] (cumulative)}}."""
    runs = {}
    for folder in sorted(curves.iterdir()):
        match = re.fullmatch(r"(output|ta|mi1|output-16k)-seed(\d+)", folder.name)
        if not match:
            continue
        legs = {}
        wall = folder / "wall-seconds.txt"
        if wall.exists():
            for line in wall.read_text().split("\n"):
                if line.strip():
                    step, seconds = map(int, line.split())
                    legs[step] = seconds  # a re-run leg keeps its last timing
        steps = sorted(int(p.stem.split("-")[1]) for p in folder.glob("eval-*.json"))
        total, cumulative = 0, []
        for step in steps:
            total += legs.get(step, 0)
            cumulative.append(total)
        runs[folder.name] = {
            "method": match[1],
            "seed": int(match[2]),
            "steps": steps,
            "fid": [fid_of(folder / f"eval-{s}.json") for s in steps],
            "wall_s": cumulative,
            "leg_s": [legs.get(s) for s in steps],
        }
    return runs


def load_seed_sets(curves: Path) -> dict[str, dict[int, float]]:
    """{"RUN-step-N" or "teacher": {first seed: FID}} from seed-sets/NAME-seed-FIRST.json, all drawn
    with one noise scheme (the same seeds under two schemes are two different sets)."""
    sets: dict[str, dict[int, float]] = {}
    schemes = {}
    for path in sorted((curves / "seed-sets").glob("*-seed-*.json")):
        name, first = re.fullmatch(r"(.+)-seed-(\d+)\.json", path.name).groups()
        report = json.loads(path.read_text())
        sets.setdefault(name, {})[int(first)] = fid_of(report)
        schemes[path.name] = report.get("noise")
    if len(set(schemes.values())) > 1 or None in schemes.values():
        raise SystemExit(
            f"{curves / 'seed-sets'}: evaluations of several or unrecorded noise schemes "
            f"({sorted(set(map(str, schemes.values())))}); remove them and run digits_curves.sh report"
        )
    return sets


def complete(sets: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """The models evaluated on every seed set any model has."""
    firsts = set().union(*(s.keys() for s in sets.values())) if sets else set()
    return {name: s for name, s in sets.items() if set(s) == firsts}


def best_student(sets: dict[str, dict[int, float]]) -> str:
    """The student of the last step with the best mean over the seed sets."""
    students = {name: statistics.mean(s.values()) for name, s in complete(sets).items() if name != "teacher"}
    last = max((int(name.rpartition("-step-")[2]) for name in students), default=0)
    students = {name: fid for name, fid in students.items() if name.endswith(f"-step-{last}")}
    if not students:
        raise SystemExit("no student evaluated on every seed set yet (digits_curves.sh report)")
    return min(students, key=students.get)


def t95(n: int) -> float:
    """Student's t, two-sided 95%, n - 1 degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def paired(a: list[dict[int, float]], b: list[dict[int, float]]) -> tuple[float, float, int]:
    """Over the seed sets, (mean of the a runs - mean of the b runs) on each: (mean, 95% half-width, sets)."""
    firsts = sorted(set.intersection(*(set(r) for r in a + b)))
    diffs = [statistics.mean(r[f] for r in a) - statistics.mean(r[f] for r in b) for f in firsts]
    return statistics.mean(diffs), t95(len(diffs)) * statistics.stdev(diffs) / len(diffs) ** 0.5, len(diffs)


def seed_set_lines(sets: dict[str, dict[int, float]]) -> list[str]:
    sets = complete(sets)
    if len(sets) < 2:
        return []
    n_sets = len(next(iter(sets.values())))
    by = {}  # (method, step) -> [per-set FIDs of each seed's run]
    for name, s in sets.items():
        match = re.fullmatch(r"(output|ta|mi1|output-16k)-seed(\d+)-step-(\d+)", name)
        if match:
            by.setdefault((match[1], int(match[3])), []).append(s)
    lines = [
        "",
        f"On {n_sets} disjoint sets of 1,000 sample seeds (0-999, 1000-1999, ...), FID mean +- sd over the "
        "sets (each run's students; runs of one method pooled):",
        "",
        "| model | step | runs | FID mean | sd over sets | per run (mean over sets) |",
        "|---|---|---|---|---|---|",
    ]
    for (method, step), runs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        per_set = [statistics.mean(r[f] for r in runs) for f in runs[0]]
        per_run = ", ".join(f"{statistics.mean(r.values()):.1f}" for r in runs)
        lines.append(
            f"| {method} | {step} | {len(runs)} | {statistics.mean(per_set):.1f} | "
            f"{statistics.stdev(per_set):.1f} | {per_run} |"
        )
    if "teacher" in sets:
        t = list(sets["teacher"].values())
        lines.append(f"| teacher (18 Heun steps) | - | 1 | {statistics.mean(t):.1f} | {statistics.stdev(t):.1f} | - |")
    within = [statistics.variance(s.values()) for name, s in sets.items() if name != "teacher"]
    lines += [
        "",
        f"Evaluation noise: the sd of one model's FID over the seed sets, pooled over the {len(within)} "
        f"students: {statistics.mean(within) ** 0.5:.1f}.",
        "",
        "Differences to output distillation (negative: better than output), with two 95% intervals: over "
        "the seed sets (paired: the evaluation's noise only) and over the training seeds (two-sample t on the "
        "runs' means over the sets, the variance pooled over the methods with two or more runs at that step):",
        "",
    ]
    for step in sorted({s for _, s in by}):
        seeds = _seed_spread(by, step)
        for method in ("ta", "mi1", "output-16k"):
            if (method, step) not in by or ("output", step) not in by:
                continue
            a, b = by[(method, step)], by[("output", step)]
            mean, half, _ = paired(a, b)
            runs = ""
            if seeds is not None:
                sd, df = seeds
                runs = f"; over training seeds +- {t95(df + 1) * sd * (1 / len(a) + 1 / len(b)) ** 0.5:.1f}"
            lines.append(
                f"- {method} - output at {step} steps ({len(a)} vs {len(b)} runs): {mean:+.1f} FID; "
                f"over the sets +- {half:.1f}{runs}"
            )
        if seeds is not None:
            lines.append(
                f"- training-seed sd at {step} steps (pooled): {seeds[0]:.1f} FID ({seeds[1]} degrees of freedom)"
            )
    if "teacher" in sets:
        best = best_student(sets)
        ratios = [sets[best][f] / sets["teacher"][f] for f in sets["teacher"]]
        lines += [
            "",
            f"Best student by mean FID over the sets: {best}, {statistics.mean(sets[best].values()):.1f}; "
            f"per set {statistics.mean(ratios):.3f}x the teacher's FID "
            f"(range {min(ratios):.3f}-{max(ratios):.3f}).",
        ]
    return lines


def load_step_cost(path: Path) -> dict[str, list[float]]:
    """{method: seconds per 1,000 steps, one per round} from digits_curves.sh step-cost (200 steps each)."""
    seconds: dict[str, list[float]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        method, _, value = line.split()
        seconds.setdefault(method, []).append(float(value) * 1000 / 200)
    return seconds


def step_cost_lines(seconds: dict[str, list[float]]) -> list[str]:
    if not seconds:
        return []
    base = statistics.mean(seconds["output"])
    cells = [
        f"{m} {statistics.mean(v):.0f} s ({', '.join(f'{x:.0f}' for x in v)}; {statistics.mean(v) / base:.2f}x output)"
        for m, v in seconds.items()
    ]
    return [
        "",
        "Seconds per 1,000 steps on a quiet machine (one core; 200 steps of each method, two interleaved "
        "rounds; the training loop only): " + "; ".join(cells) + ".",
    ]


def _seed_spread(by: dict, step: int) -> tuple[float, int] | None:
    """Pooled sd of the runs' means over the seed sets among runs of one method, and its degrees of freedom."""
    groups = [[statistics.mean(r.values()) for r in runs] for (_, s), runs in by.items() if s == step and len(runs) > 1]
    df = sum(len(g) - 1 for g in groups)
    if df == 0:
        return None
    return (sum(statistics.variance(g) * (len(g) - 1) for g in groups) / df) ** 0.5, df


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed)"
    return f"{statistics.mean(values):.1f} (range {min(values):.1f}-{max(values):.1f}, {len(values)} seeds)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("curves", type=Path)
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--best", action="store_true", help="print the best final student's checkpoint and stop")
    args = parser.parse_args()
    if args.best:
        name, _, step = best_student(load_seed_sets(args.curves)).rpartition("-step-")
        return print(args.curves / name / f"step-{step}.safetensors")
    if args.output is None:
        parser.error("-o/--output is required for the report")
    runs = load_runs(args.curves)
    if not runs:
        raise SystemExit(f"{args.curves}: no finished legs (METHOD-seedN/eval-STEP.json)")
    args.output.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"output": "tab:blue", "ta": "tab:green", "mi1": "tab:red", "output-16k": "tab:purple"}
    styles = ["-", "--", ":"]
    # Wall-clock at each method's step cost measured on a quiet core: the legs themselves shared the CPU
    # with other jobs (and were paused at times), so their own timings (curves.csv) compare nothing.
    rounds = load_step_cost(args.curves / "step-cost" / "seconds.txt")
    cost = {m: statistics.mean(v) for m, v in rounds.items()}
    fig, (by_step, by_wall) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for r in runs.values():
        style = dict(
            color=colours[r["method"]],
            linestyle=styles[r["seed"] % 3],
            marker="o",
            markersize=3,
            label=f"{r['method']} seed {r['seed']}",
        )
        by_step.plot(r["steps"], r["fid"], **style)
        per_step = cost.get(r["method"].removesuffix("-16k"))
        if per_step is not None:
            by_wall.plot([s / 1000 * per_step / 60 for s in r["steps"]], r["fid"], **style)
        elif not cost and all(s is not None for s in r["leg_s"]):
            by_wall.plot([s / 60 for s in r["wall_s"]], r["fid"], **style)
    teacher = args.output / "teacher-eval.json"
    for ax in (by_step, by_wall):
        if teacher.exists():
            t = fid_of(teacher)
            ax.axhline(t, color="black", linewidth=1, label=f"teacher (18 Heun steps) {t:.1f}")
            ax.axhline(1.15 * t, color="grey", linewidth=1, linestyle="--", label=f"1.15x teacher {1.15 * t:.1f}")
        ax.grid(alpha=0.3)
    by_step.set(
        xlabel="optimizer steps (batch 64)",
        ylabel="FID (digits classifier features, 1,000 samples)",
        title="FID against steps",
    )
    by_wall.set(
        xlabel="minutes on one quiet CPU core (steps x measured step cost)"
        if cost
        else "training wall-clock, minutes (one CPU core, shared)",
        title="FID against wall-clock",
    )
    by_step.legend(fontsize=8)
    fig.suptitle("One-step 4 x 80 students (485k parameters) distilled from 4,096 digits pairs (output-16k: 16,384)")
    fig.tight_layout()
    fig.savefig(args.output / "curves.png", dpi=120)

    rows = ["run,method,seed,step,fid,leg_seconds"]
    for name, r in runs.items():
        rows += [
            f"{name},{r['method']},{r['seed']},{s},{f:.3f},{w if w is not None else ''}"
            for s, f, w in zip(r["steps"], r["fid"], r["leg_s"])
        ]
    (args.output / "curves.csv").write_text("\n".join(rows) + "\n")

    lines = [
        "| method | "
        + " | ".join(f"step {s}" for s in _checkpoints(runs))
        + " | s per 1,000 steps (median of the legs; shared CPU) |",
        "|---|" + "---|" * (len(_checkpoints(runs)) + 1),
    ]
    for method in ("output", "ta", "mi1", "output-16k"):  # output-16k: output distillation on 16,384 pairs
        mine = [r for r in runs.values() if r["method"] == method]
        if not mine:
            continue
        cells = []
        for step in _checkpoints(runs):
            values = [r["fid"][r["steps"].index(step)] for r in mine if step in r["steps"]]
            cells.append(spread(values) if values else "-")
        legs = [w for r in mine for w in r["leg_s"] if w]
        cells.append(f"{statistics.median(legs):.0f}" if legs else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    assistant = args.curves / "ta-assistant" / "eval.json"
    if assistant.exists():
        lines += ["", f"The teaching assistant (DiT-Nano-M/2, one step, output loss): FID {fid_of(assistant):.1f}."]
    lines += step_cost_lines(rounds)
    lines += seed_set_lines(load_seed_sets(args.curves))
    (args.output / "curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _checkpoints(runs: dict[str, dict]) -> list[int]:
    """Steps shown in the table: every 2,000 and the last common one."""
    common = set.intersection(*(set(r["steps"]) for r in runs.values()))
    every = sorted({s for r in runs.values() for s in r["steps"] if s % 2000 == 0} | common)
    return every


if __name__ == "__main__":
    main()
