"""Plots and tables of benchmarks/digits_curves.sh: FID against steps and wall-clock per method
and seed, the table at the last common step (mean and spread), the evaluation's own noise and the
wall-clock per 1,000 steps.

    python benchmarks/digits_curves_report.py runs/digits/curves -o docs/results-digits
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path


def fid_of(path: Path) -> float:
    report = json.loads(path.read_text())
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
        runs[folder.name] = {"method": match[1], "seed": int(match[2]), "steps": steps,
                             "fid": [fid_of(folder / f"eval-{s}.json") for s in steps], "wall_s": cumulative,
                             "leg_s": [legs.get(s) for s in steps]}
    return runs


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed)"
    return f"{statistics.mean(values):.1f} (range {min(values):.1f}-{max(values):.1f}, {len(values)} seeds)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("curves", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    runs = load_runs(args.curves)
    if not runs:
        raise SystemExit(f"{args.curves}: no finished legs (METHOD-seedN/eval-STEP.json)")
    args.output.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"output": "tab:blue", "ta": "tab:green", "mi1": "tab:red", "output-16k": "tab:purple"}
    styles = ["-", "--", ":"]
    fig, (by_step, by_wall) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for r in runs.values():
        style = dict(color=colours[r["method"]], linestyle=styles[r["seed"] % 3], marker="o", markersize=3,
                     label=f"{r['method']} seed {r['seed']}")
        by_step.plot(r["steps"], r["fid"], **style)
        if all(s is not None for s in r["leg_s"]):
            by_wall.plot([s / 60 for s in r["wall_s"]], r["fid"], **style)
    teacher = args.output / "teacher-eval.json"
    for ax in (by_step, by_wall):
        if teacher.exists():
            t = fid_of(teacher)
            ax.axhline(t, color="black", linewidth=1, label=f"teacher (18 Heun steps) {t:.1f}")
            ax.axhline(1.15 * t, color="grey", linewidth=1, linestyle="--", label=f"1.15x teacher {1.15 * t:.1f}")
        ax.grid(alpha=0.3)
    by_step.set(xlabel="optimizer steps (batch 64)", ylabel="FID (digits classifier features, 1,000 samples)",
                title="FID against steps")
    by_wall.set(xlabel="training wall-clock, minutes (one CPU core, shared)", title="FID against wall-clock")
    by_step.legend(fontsize=8)
    fig.suptitle("One-step 4 x 80 students (485k parameters) distilled from 4,096 digits pairs (output-16k: 16,384)")
    fig.tight_layout()
    fig.savefig(args.output / "curves.png", dpi=120)

    rows = ["run,method,seed,step,fid,leg_seconds"]
    for name, r in runs.items():
        rows += [f"{name},{r['method']},{r['seed']},{s},{f:.3f},{w if w is not None else ''}"
                 for s, f, w in zip(r["steps"], r["fid"], r["leg_s"])]
    (args.output / "curves.csv").write_text("\n".join(rows) + "\n")

    lines = ["| method | " + " | ".join(f"step {s}" for s in _checkpoints(runs)) + " | s per 1,000 steps |",
             "|---|" + "---|" * (len(_checkpoints(runs)) + 1)]
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
    noise = sorted((args.curves / "eval-noise").glob("seed-*.json"))
    if noise:
        fids = [fid_of(p) for p in noise]
        lines += ["", f"Evaluation noise (one model, output seed 0 at 8,000 steps, {len(fids)} disjoint sets of "
                  f"1,000 sample seeds): FID {statistics.mean(fids):.1f} +- {statistics.stdev(fids):.1f} (sd), "
                  f"range {min(fids):.1f}-{max(fids):.1f}."]
    assistant = args.curves / "ta-assistant" / "eval.json"
    if assistant.exists():
        lines.append(f"The teaching assistant (DiT-Nano-M/2, one step, output loss): FID {fid_of(assistant):.1f}.")
    (args.output / "curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _checkpoints(runs: dict[str, dict]) -> list[int]:
    """Steps shown in the table: every 2,000 and the last common one."""
    common = set.intersection(*(set(r["steps"]) for r in runs.values()))
    every = sorted({s for r in runs.values() for s in r["steps"] if s % 2000 == 0} | common)
    return every


if __name__ == "__main__":
    main()
