"""Pictures of measurements, where people would rather look than read: the latency distribution of
each benchmarked row, and the quality / latency trade-off of the models compared. matplotlib comes
with the train extra; without it each function returns False and the caller says so in one line
(the device image stays light)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgedit.bench.records import BenchRecord
from edgedit.contract.staging import atomic_output

MISSING = "matplotlib is not installed here: no plots (pip install 'edgedit[train]' or matplotlib)"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only: no display on a server or a Jetson over ssh
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def row_label(r: BenchRecord) -> str:
    calls = r.network_evaluations_per_call
    what = f"sampler, {calls} call{'s' if calls > 1 else ''}" if r.what == "sampler" else "model"
    return f"{r.model}  {r.backend} {r.precision}  b{r.batch} ({what})"


def latency_distribution(path: str | os.PathLike, records: list[BenchRecord]) -> bool:
    """One row per record, ms per call on a log axis: the range of its timed calls (min to max), its
    p50, p90 and p99 marked, and the p50 of each interleaved round as a dot (their spread is the run's
    own noise). False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    from matplotlib.lines import Line2D

    marks = (("p50", "black"), ("p90", "tab:orange"), ("p99", "tab:red"))
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(records) + 1.6))
    for y, r in enumerate(reversed(records)):
        lat = r.latency_ms
        ax.plot([lat.min, lat.max], [y, y], color="0.75", lw=6, solid_capstyle="butt", zorder=1)
        rounds = r.round_p50_ms or []
        ax.scatter(rounds, [y] * len(rounds), s=8, color="0.35", zorder=2)
        for key, color in marks:
            if (value := getattr(lat, key)) is not None:
                ax.scatter([value], [y], marker="|", s=260, linewidths=2.5, color=color, zorder=3)
    handles = [Line2D([], [], color="0.75", lw=6, label="min to max")]
    handles += [Line2D([], [], color=c, marker="|", ls="", ms=12, mew=2.5, label=k) for k, c in marks]
    handles += [Line2D([], [], color="0.35", marker=".", ls="", label="p50 of each round")]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08 - 0.4 / len(records)), ncol=5)
    ax.set_yticks(range(len(records)), [row_label(r) for r in reversed(records)], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("ms per call (p90 / p99 where there were enough calls)", fontsize=8)
    ax.set_title("Latency distribution per backend and precision", fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    _save(fig, plt, path)
    return True


@dataclass(frozen=True)
class QualityPoint:
    """A model on the trade-off plot: its FID and its per-image latency, estimated on the device
    (with the estimate's range) and measured on this host."""

    name: str
    fid: float
    device_ms: float
    device_low_ms: float
    device_high_ms: float
    host_ms: float | None


DEVICE_LABEL = "Orin Nano FP16 (calibrated estimate)"
HOST_LABEL = "p50, at the smallest batch benchmarked"


def points_of(records: list[BenchRecord]) -> list[QualityPoint]:
    """The trade-off points of bench records whose model file records its FID: one per model,
    backend and precision, at its smallest batch; the device estimate is for the whole call (a
    sampler's every network evaluation), FP16 on an Orin Nano."""
    from edgedit.cost.fit import estimate

    chosen: dict[tuple, BenchRecord] = {}
    for r in records:
        key = (r.model, r.backend, r.precision, r.what)
        if r.fid is not None and (key not in chosen or r.batch < chosen[key].batch):
            chosen[key] = r
    points = []
    for (model, backend, precision, _), r in chosen.items():
        e = estimate(r.config, "orin-nano", "fp16")
        calls = r.network_evaluations_per_call
        points.append(
            QualityPoint(f"{model} {backend} {precision}", r.fid, calls * e.ms, calls * e.low_ms,
                         calls * e.high_ms, r.latency_per_image_ms)
        )  # fmt: skip
    return points


def quality_vs_latency(
    path: str | os.PathLike, points: list[QualityPoint], device_label: str, host_label: str = HOST_LABEL
) -> bool:
    """FID against per-image latency, twice: the device estimate (with its range) and this host's
    measurement; lower-left is better. Points at one place share one label. False without
    matplotlib or without points."""
    plt = _pyplot()
    if plt is None or not points:
        return False
    fig, (device, host) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    places: dict[tuple, list[str]] = {}
    for p in points:
        device.errorbar(
            p.device_ms, p.fid, xerr=[[p.device_ms - p.device_low_ms], [p.device_high_ms - p.device_ms]],
            fmt="o", capsize=3,
        )  # fmt: skip
        places.setdefault((0, round(p.device_ms, 6), p.fid), []).append(p.name)
        if p.host_ms is not None:
            host.plot(p.host_ms, p.fid, "o")
            places.setdefault((1, round(p.host_ms, 6), p.fid), []).append(p.name)
    for (panel, x, y), names in places.items():
        (device, host)[panel].annotate("\n".join(names), (x, y), textcoords="offset points", xytext=(6, 6), fontsize=7)
    device.set_xlabel(f"estimated ms per image: {device_label}", fontsize=8)
    host.set_xlabel(f"measured ms per image on this host ({host_label})", fontsize=8)
    device.set_ylabel("FID (lower is better)")
    for ax in (device, host):
        low, high = ax.get_xlim()
        if low > 0 and high / low >= 10:  # a log axis only where the latencies span a decade
            ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Quality against latency (lower left is better)", fontsize=10)
    _save(fig, plt, path)
    return True
