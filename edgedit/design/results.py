"""Sweep results as files, the principles they support (computed, not asserted), and `design pick`.

A candidate's result is a `SweepResult`, from the sweep that makes it to the reports and `design
pick` that read it. Device latencies are estimates of the calibrated kernel model (`edgedit.cost.fit`),
recomputed from each result's config whenever the reports are written or a pick is made, so they
follow the calibration in force (`edgedit models --calibrate`)."""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, RootModel, model_validator

from edgedit.contract.config import ModelConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.schema import OpenRecord, load_json, parse
from edgedit.contract.staging import atomic_output, write_text_atomic
from edgedit.cost.fit import Estimate
from edgedit.eval.evaluate import Metric
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


class MeasuredLatency(OpenRecord):
    """A candidate's network call at batch 1, timed on one thread in interleaved rounds (`sweep.time_models`)."""

    backend: str  # "onnxruntime (CPUExecutionProvider, 1 thread)"
    p50_ms: float = Field(gt=0)  # the median of the rounds' medians
    p90_ms: float | None = Field(default=None, ge=0)
    rounds_p50_ms: list[float] = Field(default_factory=list, max_length=10_000)
    machine: str | None = None


class SweepResult(OpenRecord):
    """One trained candidate: a `result.json` of the sweep, an entry of its `results.json`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a folder of the sweep: no path separators
    budget: int = Field(ge=1)
    method: str
    config: ModelConfig
    depth: int = Field(ge=1)  # the config's, repeated for people reading the JSON (checked equal)
    width: int = Field(ge=1)
    heads: int = Field(ge=1)
    params: int = Field(ge=1)
    macs: int = Field(ge=0)
    fid: float = Field(ge=0)
    fid_metric: str  # what the FID is: metric, features, samples, reference
    metrics: list[Metric] = Field(min_length=1)  # the whole evaluation
    steps: int = Field(ge=1)  # the training schedule every candidate shared
    batch: int = Field(ge=1)
    lr: float = Field(gt=0)
    latency: MeasuredLatency
    device_estimates: dict[str, Estimate] | None = None  # added when the reports are written

    @model_validator(mode="before")
    @classmethod
    def _without_roofline_fields(cls, data: Any) -> Any:
        """Sweeps before the calibrated estimates wrote roofline numbers (`orin_nano_fp16_ms` ...): dropped."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not k.endswith(("_fp16_ms", "_int8_ms"))}
        return data

    @model_validator(mode="after")
    def _shape_is_the_configs(self) -> SweepResult:
        c = self.config
        if (self.depth, self.width, self.heads) != (c.depth, c.hidden_size, c.num_heads):
            raise ValueError(
                f"depth/width/heads {self.depth}/{self.width}/{self.heads} are not its config's "
                f"{c.depth}/{c.hidden_size}/{c.num_heads}"
            )
        return self


class _Results(RootModel[list[SweepResult]]):
    pass


def row(r: SweepResult) -> dict[str, Any]:
    """The result flattened to CSV_FIELDS (with its device estimates)."""
    e = r.device_estimates or {}
    return {
        **{k: getattr(r, k) for k in CSV_FIELDS[:9]},
        "latency_p50_ms": r.latency.p50_ms,
        **{f"{k}_ms": e[k].ms if k in e else None for k in DEVICE_KEYS},
    }


def with_device_estimates(results: list[SweepResult]) -> list[SweepResult]:
    """Each result with `device_estimates` from its config under the calibration in force."""
    from edgedit.cost.fit import estimates

    return [r.model_copy(update={"device_estimates": estimates(r.config)}) for r in results]


def estimate_label() -> str:
    from edgedit.cost.fit import active_fit

    return active_fit().label


def write_reports(out: Path, results: list[SweepResult]) -> list[SweepResult]:
    """results.json/csv, principles.md and pareto.png; returns the results as written (with their estimates)."""
    results = sorted(with_device_estimates(results), key=lambda r: (r.budget, r.method, -r.depth, r.width, r.heads))
    write_text_atomic(out / "results.json", json.dumps([r.model_dump(mode="json") for r in results], indent=2))
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


def pareto_front(results: list[SweepResult], latency_key=lambda r: r.latency.p50_ms) -> list[SweepResult]:
    """Results not beaten on both FID and latency by another."""
    return [
        r
        for r in results
        if not any(
            o.fid <= r.fid and latency_key(o) <= latency_key(r) and (o.fid, latency_key(o)) != (r.fid, latency_key(r))
            for o in results
        )
    ]


def pareto_plot(path: Path, results: list[SweepResult]) -> bool:
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
        (("measured", f"measured ms, batch 1 ({results[0].latency.backend})"), ("orin_nano_fp16", device_label)),
    ):

        def latency(r, key=key):
            return r.latency.p50_ms if key == "measured" else r.device_estimates[key].ms

        for method, marker in markers.items():
            rs = [r for r in results if r.method == method]
            if rs:
                ax.scatter(
                    [latency(r) for r in rs],
                    [r.fid for r in rs],
                    s=[r.params / 4e3 for r in rs],
                    marker=marker,
                    alpha=0.6,
                    label=method,
                )
                if key != "measured":  # the estimate's range
                    e = [r.device_estimates[key] for r in rs]
                    ax.errorbar(
                        [x.ms for x in e],
                        [r.fid for r in rs],
                        fmt="none",
                        ecolor="grey",
                        lw=0.6,
                        xerr=[[x.ms - x.low_ms for x in e], [x.high_ms - x.ms for x in e]],
                    )
        front = sorted(pareto_front(results, latency), key=latency)
        ax.plot([latency(r) for r in front], [r.fid for r in front], "k--", lw=0.8, label="Pareto front")
        for r in front:
            ax.annotate(f"L{r.depth}xD{r.width}/{r.heads}", (latency(r), r.fid), fontsize=6)
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


def principles(results: list[SweepResult]) -> str:
    """What depth, width, heads and method did at fixed size, in numbers from these results."""
    first = results[0]
    lines = [
        "# What the sweep says",
        "",
        f"{len(results)} trained candidates. FID: {first.fid_metric}.",
        f"Schedule per candidate: {first.steps} steps, batch {first.batch}, lr {first.lr}.",
        "All statements below are computed from results.json; small differences are within run-to-run noise,",
        "which this sweep does not measure (one seed per candidate).",
        f"Orin Nano FP16 ms: GPU time of one TensorRT call at batch 1, {estimate_label()}, with its range.",
        "",
    ]
    by_budget: dict[int, list[SweepResult]] = defaultdict(list)
    for r in results:
        by_budget[r.budget].append(r)
    for budget, rs in sorted(by_budget.items()):
        out = [r for r in rs if r.method == "output"] or rs
        best = min(out, key=lambda r: r.fid)
        lines += [
            f"## Budget {budget:,} parameters",
            "",
            "| depth x width / heads | params | MACs | method | FID | measured ms | Orin Nano FP16 ms (est.) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in sorted(rs, key=lambda r: (r.method, r.depth, r.heads)):
            e = r.device_estimates["orin_nano_fp16"]
            lines.append(
                f"| {r.depth} x {r.width} / {r.heads} | {r.params:,} | {r.macs / 1e6:.1f}M | "
                f"{r.method} | {r.fid:.1f} | {r.latency.p50_ms:.2f} | "
                f"{e.ms:.2f} ({e.low_ms:.2f}-{e.high_ms:.2f}) |"
            )
        lines += [
            "",
            f"- Best {best.method} configuration: {best.depth} blocks x width {best.width}, "
            f"{best.heads} heads (FID {best.fid:.1f}).",
        ]
        depths = sorted({r.depth for r in out})
        if len(depths) > 1:
            per_depth = {d: min(r.fid for r in out if r.depth == d) for d in depths}
            shallow, deep = depths[0], depths[-1]
            lines.append(
                "- Depth at this size (best FID per depth): "
                + ", ".join(f"{d} blocks {per_depth[d]:.1f}" for d in depths)
                + f"; the shallowest-widest ({shallow}) vs the deepest-narrowest ({deep}): "
                f"{per_depth[shallow]:.1f} vs {per_depth[deep]:.1f}."
            )
            lat = {d: _mean([r.latency.p50_ms for r in out if r.depth == d]) for d in depths}
            est = {d: _mean([r.device_estimates["orin_nano_fp16"].ms for r in out if r.depth == d]) for d in depths}
            lines.append(
                "- Latency by depth (mean over heads): measured "
                + ", ".join(f"{d}: {lat[d]:.2f} ms" for d in depths)
                + "; Orin Nano FP16 (estimate) "
                + ", ".join(f"{d}: {est[d]:.2f} ms" for d in depths)
                + "."
            )
        heads = sorted({r.heads for r in out})
        if len(heads) > 1:
            lines.append(
                "- Heads (mean FID over depths): "
                + ", ".join(f"{h} heads {_mean([r.fid for r in out if r.heads == h]):.1f}" for h in heads)
                + "."
            )
        for method in ("ta", "mi1"):
            paired = [
                (r.fid, o.fid)
                for r in rs
                if r.method == method
                for o in rs
                if o.method == "output" and o.config == r.config
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


def load_results(results_path: str | os.PathLike) -> list[SweepResult]:
    """A sweep's results.json, every candidate checked (its config included) before use."""
    path = Path(results_path)
    fix = "the sweep writes results.json (edgedit design sweep)"
    results = parse(_Results, load_json(path, "sweep results file", fix), path, "sweep results file", fix).root
    if not results:
        raise EdgeditError(f"{path}: no results in it; {fix}")
    return results


@dataclass(frozen=True)
class Pick:
    """`design pick`'s answer: the result and its latency estimate on the device and precision asked for."""

    result: SweepResult
    device_estimate: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.model_dump(mode="json"), "device_estimate": self.device_estimate.model_dump()}


def pick(
    results_path: str | os.PathLike, latency_ms: float | None = None, device: str = "orin-nano", precision: str = "fp16"
) -> Pick:
    """The best-FID result whose estimated latency on `device` at `precision` is within `latency_ms`
    (if given)."""
    import math

    from edgedit.contract.hardware import DEVICES
    from edgedit.cost.fit import estimate

    if device not in DEVICES:
        raise EdgeditError(f"`device` must be one of {', '.join(DEVICES)} (got {device!r})")
    if precision not in ("fp16", "int8"):
        raise EdgeditError(f"`precision` must be fp16 or int8 (got {precision!r})")
    if latency_ms is not None and not (math.isfinite(latency_ms) and latency_ms > 0):
        raise EdgeditError(f"`latency_ms` must be a positive number of milliseconds (got {latency_ms})")
    timed = [Pick(r, estimate(r.config, device, precision)) for r in load_results(results_path)]
    fitting = [p for p in timed if latency_ms is None or p.device_estimate.ms <= latency_ms]
    if not fitting:
        fastest = min(timed, key=lambda p: p.device_estimate.ms)
        raise EdgeditError(
            f"no swept configuration fits {latency_ms} ms on {device} {precision} (estimated); the fastest is "
            f"{fastest.result.name} at {fastest.device_estimate.ms:.3f} ms"
        )
    return min(fitting, key=lambda p: p.result.fid)


def picked_student(best: SweepResult, results_path: str | os.PathLike) -> Path:
    return Path(results_path).parent / best.name / "student.safetensors"


def save_pick(best: SweepResult, results_path: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy the picked candidate's student next to its sweep result: the file carries its own evaluation."""
    from edgedit.models.checkpoint import copy_with_provenance

    student = picked_student(best, results_path)
    if not student.is_file():
        raise EdgeditError(
            f"{student}: the picked candidate's student is missing; re-run the sweep into "
            f"{student.parent.parent} (finished candidates are skipped)"
        )
    sweep = best.model_dump(
        mode="json", include={"name", "budget", "params", "macs", "steps", "batch", "lr", "fid_metric"}
    )
    return copy_with_provenance(
        student,
        dest,
        eval={m.metric: significant(m.value) for m in best.metrics},
        eval_samples=best.metrics[0].samples,
        sweep={**sweep, "latency": best.latency.model_dump(mode="json")},
    )
