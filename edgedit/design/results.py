"""Sweep results as files, the principles they support (computed, not asserted), and `design pick`.

Device latencies are estimates of the calibrated kernel model (`edgedit.cost.fit`),
recomputed from each result's config whenever the reports are written or a pick is made, so they
follow the calibration in force (`edgedit models --calibrate`)."""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import Field, RootModel

from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.schema import OpenRecord, load_json, parse
from edgedit.contract.staging import atomic_output, write_text_atomic
from edgedit.eval.metrics import significant

DEVICE_KEYS = ("orin_nano_fp16", "orin_nano_int8", "orin_nano_super_fp16", "orin_nano_super_int8")
CSV_FIELDS = (
    "name",
    "budget",
    "method",
    "depth",
    "width",
    "heads",
    "params",
    "macs",
    "fid",
    "latency_p50_ms",
    *(f"{k}_ms" for k in DEVICE_KEYS),
)


def row(r: dict[str, Any]) -> dict[str, Any]:
    e = r["device_estimates"]
    return {
        **{k: r.get(k) for k in CSV_FIELDS[:9]},
        "latency_p50_ms": r["latency"]["p50_ms"],
        **{f"{k}_ms": e[k]["ms"] for k in DEVICE_KEYS},
    }


def with_device_estimates(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each result with `device_estimates` from its config under the calibration in force."""
    from edgedit.cost.fit import estimates

    out = []
    for r in results:
        r = {k: v for k, v in r.items() if not k.endswith(("_fp16_ms", "_int8_ms"))}  # roofline fields of older sweeps
        out.append({**r, "device_estimates": estimates(DiTConfig.from_dict(r["config"]))})
    return out


def estimate_label() -> str:
    from edgedit.cost.fit import active_fit

    return active_fit().label


def write_reports(out: Path, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """results.json/csv, principles.md and pareto.png; returns the results as written (with their estimates)."""
    results = sorted(
        with_device_estimates(results), key=lambda r: (r["budget"], r["method"], -r["depth"], r["width"], r["heads"])
    )
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_FIELDS))
    writer.writeheader()
    for r in results:
        writer.writerow(row(r))
    write_text_atomic(out / "results.csv", buffer.getvalue())
    if results:
        write_text_atomic(out / "principles.md", principles(results))
        pareto_plot(out / "pareto.png", results)
    return results


def pareto_front(results: list[dict[str, Any]], latency_key=lambda r: r["latency"]["p50_ms"]) -> list[dict[str, Any]]:
    """Results not beaten on both FID and latency by another."""
    return [
        r
        for r in results
        if not any(
            o["fid"] <= r["fid"]
            and latency_key(o) <= latency_key(r)
            and (o["fid"], latency_key(o)) != (r["fid"], latency_key(r))
            for o in results
        )
    ]


def pareto_plot(path: Path, results: list[dict[str, Any]]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    markers = {"output": "o", "ta": "s", "mi1": "^"}
    device_label = f"Orin Nano FP16 ms per call, {estimate_label()}"
    for ax, (key, label) in zip(
        axes,
        (("measured", f"measured ms, batch 1 ({results[0]['latency']['backend']})"), ("orin_nano_fp16", device_label)),
    ):

        def latency(r, key=key):
            return r["latency"]["p50_ms"] if key == "measured" else r["device_estimates"][key]["ms"]

        for method, marker in markers.items():
            rs = [r for r in results if r["method"] == method]
            if rs:
                ax.scatter(
                    [latency(r) for r in rs],
                    [r["fid"] for r in rs],
                    s=[r["params"] / 4e3 for r in rs],
                    marker=marker,
                    alpha=0.6,
                    label=method,
                )
                if key != "measured":  # the estimate's range
                    e = [r["device_estimates"][key] for r in rs]
                    ax.errorbar(
                        [x["ms"] for x in e],
                        [r["fid"] for r in rs],
                        fmt="none",
                        ecolor="grey",
                        lw=0.6,
                        xerr=[[x["ms"] - x["low_ms"] for x in e], [x["high_ms"] - x["ms"] for x in e]],
                    )
        front = sorted(pareto_front(results, latency), key=latency)
        ax.plot([latency(r) for r in front], [r["fid"] for r in front], "k--", lw=0.8, label="Pareto front")
        for r in front:
            ax.annotate(f"L{r['depth']}xD{r['width']}/{r['heads']}", (latency(r), r["fid"]), fontsize=6)
        ax.set_xlabel(label, fontsize=7 if key != "measured" else None)
        ax.set_ylabel("FID (lower is better)")
        ax.legend(fontsize=7)
    fig.suptitle("DiT-Nano design sweep: quality vs latency (marker area ~ parameters)", fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return True


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def principles(results: list[dict[str, Any]]) -> str:
    """What depth, width, heads and method did at fixed size, in numbers from these results."""
    lines = [
        "# What the sweep says",
        "",
        f"{len(results)} trained candidates. FID: {results[0]['fid_metric']}.",
        f"Schedule per candidate: {results[0]['steps']} steps, batch {results[0]['batch']}, lr {results[0]['lr']}.",
        "All statements below are computed from results.json; small differences are within run-to-run noise,",
        "which this sweep does not measure (one seed per candidate).",
        f"Orin Nano FP16 ms: GPU time of one TensorRT call at batch 1, {estimate_label()}, with its range.",
        "",
    ]
    by_budget = defaultdict(list)
    for r in results:
        by_budget[r["budget"]].append(r)
    for budget, rs in sorted(by_budget.items()):
        out = [r for r in rs if r["method"] == "output"] or rs
        best = min(out, key=lambda r: r["fid"])
        lines += [
            f"## Budget {budget:,} parameters",
            "",
            "| depth x width / heads | params | MACs | method | FID | measured ms | Orin Nano FP16 ms (est.) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in sorted(rs, key=lambda r: (r["method"], r["depth"], r["heads"])):
            e = r["device_estimates"]["orin_nano_fp16"]
            lines.append(
                f"| {r['depth']} x {r['width']} / {r['heads']} | {r['params']:,} | {r['macs'] / 1e6:.1f}M | "
                f"{r['method']} | {r['fid']:.1f} | {r['latency']['p50_ms']:.2f} | "
                f"{e['ms']:.2f} ({e['low_ms']:.2f}-{e['high_ms']:.2f}) |"
            )
        lines += [
            "",
            f"- Best {best['method']} configuration: {best['depth']} blocks x width {best['width']}, "
            f"{best['heads']} heads (FID {best['fid']:.1f}).",
        ]
        depths = sorted({r["depth"] for r in out})
        if len(depths) > 1:
            per_depth = {d: min(r["fid"] for r in out if r["depth"] == d) for d in depths}
            shallow, deep = depths[0], depths[-1]
            lines.append(
                "- Depth at this size (best FID per depth): "
                + ", ".join(f"{d} blocks {per_depth[d]:.1f}" for d in depths)
                + f"; the shallowest-widest ({shallow}) vs the deepest-narrowest ({deep}): "
                f"{per_depth[shallow]:.1f} vs {per_depth[deep]:.1f}."
            )
            lat = {d: _mean([r["latency"]["p50_ms"] for r in out if r["depth"] == d]) for d in depths}
            est = {
                d: _mean([r["device_estimates"]["orin_nano_fp16"]["ms"] for r in out if r["depth"] == d])
                for d in depths
            }
            lines.append(
                "- Latency by depth (mean over heads): measured "
                + ", ".join(f"{d}: {lat[d]:.2f} ms" for d in depths)
                + "; Orin Nano FP16 (estimate) "
                + ", ".join(f"{d}: {est[d]:.2f} ms" for d in depths)
                + "."
            )
        heads = sorted({r["heads"] for r in out})
        if len(heads) > 1:
            lines.append(
                "- Heads (mean FID over depths): "
                + ", ".join(f"{h} heads {_mean([r['fid'] for r in out if r['heads'] == h]):.1f}" for h in heads)
                + "."
            )
        for method in ("ta", "mi1"):
            paired = [
                (r["fid"], o["fid"])
                for r in rs
                if r["method"] == method
                for o in rs
                if o["method"] == "output" and o["config"] == r["config"]
            ]
            if paired:
                diff = [m - o for m, o in paired]
                better = sum(d < 0 for d in diff)
                lines.append(
                    f"- {method.upper()} vs output at equal architecture and schedule: mean FID change "
                    f"{_mean(diff):+.1f} ({better} of {len(diff)} candidates improved)."
                )
        lines.append("")
    return "\n".join(lines)


class _Latency(OpenRecord):
    p50_ms: float = Field(gt=0)


class SweepResult(OpenRecord):
    """One candidate of `results.json`, as `design pick` and the reports read it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a folder of the sweep: no path separators
    budget: int = Field(ge=1)
    method: str
    config: dict[str, Any]
    depth: int = Field(ge=1)
    width: int = Field(ge=1)
    heads: int = Field(ge=1)
    params: int = Field(ge=1)
    fid: float = Field(ge=0)
    latency: _Latency


class _Results(RootModel[list[SweepResult]]):
    pass


def load_results(results_path: str | os.PathLike) -> list[dict[str, Any]]:
    """A sweep's results.json, every candidate checked (its config included) before use."""
    path = Path(results_path)
    fix = "the sweep writes results.json (edgedit design sweep)"
    results = parse(_Results, load_json(path, "sweep results file", fix), path, "sweep results file", fix).root
    if not results:
        raise EdgeditError(f"{path}: no results in it; {fix}")
    for r in results:
        try:
            DiTConfig.from_dict(r.config)
        except EdgeditError as err:
            raise EdgeditError(f"{path}: result {r.name}: {err}") from None
    return [r.model_dump() for r in results]


def pick(
    results_path: str | os.PathLike, latency_ms: float | None = None, device: str = "orin-nano", precision: str = "fp16"
) -> dict[str, Any]:
    """The best-FID result whose estimated latency on `device` at `precision` is within `latency_ms`
    (if given), with that estimate under "device_estimate"."""
    import math

    from edgedit.contract.hardware import DEVICES
    from edgedit.cost.fit import estimate

    if device not in DEVICES:
        raise EdgeditError(f"`device` must be one of {', '.join(DEVICES)} (got {device!r})")
    if precision not in ("fp16", "int8"):
        raise EdgeditError(f"`precision` must be fp16 or int8 (got {precision!r})")
    if latency_ms is not None and not (math.isfinite(latency_ms) and latency_ms > 0):
        raise EdgeditError(f"`latency_ms` must be a positive number of milliseconds (got {latency_ms})")
    results = load_results(results_path)
    timed = [{**r, "device_estimate": estimate(DiTConfig.from_dict(r["config"]), device, precision)} for r in results]
    fitting = [r for r in timed if latency_ms is None or r["device_estimate"]["ms"] <= latency_ms]
    if not fitting:
        fastest = min(timed, key=lambda r: r["device_estimate"]["ms"]) if timed else None
        hint = f"; the fastest is {fastest['name']} at {fastest['device_estimate']['ms']:.3f} ms" if fastest else ""
        raise EdgeditError(f"no swept configuration fits {latency_ms} ms on {device} {precision} (estimated){hint}")
    return min(fitting, key=lambda r: r["fid"])


def picked_student(best: dict[str, Any], results_path: str | os.PathLike) -> Path:
    return Path(results_path).parent / best["name"] / "student.safetensors"


def save_pick(best: dict[str, Any], results_path: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy the picked candidate's student next to its sweep result: the file carries its own evaluation."""
    from edgedit.models.checkpoint import copy_with_provenance

    student = picked_student(best, results_path)
    if not student.is_file():
        raise EdgeditError(
            f"{student}: the picked candidate's student is missing; re-run the sweep into "
            f"{student.parent.parent} (finished candidates are skipped)"
        )
    evaluation = {m["metric"]: significant(m["value"]) for m in best["metrics"]}
    sweep = {k: best[k] for k in ("name", "budget", "params", "macs", "steps", "batch", "lr", "fid_metric")}
    return copy_with_provenance(
        student,
        dest,
        eval=evaluation,
        eval_samples=best["metrics"][0]["samples"],
        sweep={**sweep, "latency": best["latency"]},
    )
