"""Bench records compared: each row's speed against the first of its batch size (with a bootstrap
interval over interleaved rounds), as CSV rows and a Markdown table. Torch-free."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgedit.bench.records import BenchRecord
from edgedit.contract.staging import write_text_atomic


@dataclass(frozen=True)
class Compared:
    """A record with its speed relative to the first record of the same batch and `what`."""

    record: BenchRecord
    speedup_vs_first: float  # p50 of the first / p50 of this one
    speedup_ci: tuple[float, float] | None  # its 95% interval, when both ran in the same rounds

    def speedup_text(self) -> str:
        """'1.38x (1.30-1.45)': the ratio and its 95% interval when there is one."""
        ci = self.speedup_ci
        return f"{self.speedup_vs_first:.2f}x" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")


def comparison_rows(records: list[BenchRecord]) -> list[Compared]:
    """Each record with its speed relative to the first record of the same batch (and `what`), and
    that ratio's 95% confidence interval when both were measured in the same interleaved rounds."""
    firsts: dict[tuple, BenchRecord] = {}
    rows = []
    for r in records:
        first = firsts.setdefault((r.batch, r.what), r)
        rows.append(
            Compared(
                r,
                first.latency_ms.p50 / r.latency_ms.p50,
                None if r is first else ratio_interval(first.round_p50_ms, r.round_p50_ms),
            )
        )
    return rows


def ratio_interval(
    reference: list[float] | None, other: list[float] | None, resamples: int = 2000, level: float = 0.95
) -> tuple[float, float] | None:
    """Bootstrap interval of median(reference) / median(other) over paired rounds (round k of both ran
    back to back, so rounds are resampled together); None with fewer than 5 common rounds."""
    if not reference or not other or len(reference) != len(other) or len(reference) < 5:
        return None
    ref, oth = np.asarray(reference), np.asarray(other)
    picks = np.random.default_rng(0).integers(0, len(ref), (resamples, len(ref)))  # seeded: same data, same interval
    ratios = np.median(ref[picks], axis=1) / np.median(oth[picks], axis=1)
    low, high = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


CSV_FIELDS = (
    "model",
    "backend",
    "provider",
    "precision",
    "batch",
    "what",
    "steps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "min_ms",
    "max_ms",
    "std_ms",
    "n",
    "latency_per_image_ms",
    "throughput_img_s",
    "gflop_s",
    "gpu_p50_ms",
    "rounds",
    "peak_rss_mb",
    "rss_growth_mb",
    "process_peak_rss_mb",
    "vdd_in_mean_mw",
    "energy_per_image_j",
    "interrupted",
)


def csv_row(r: BenchRecord) -> dict[str, Any]:
    """The record flattened to CSV_FIELDS."""
    lat, tegra = r.latency_ms, r.tegrastats
    return {
        "model": r.model,
        "backend": r.backend,
        "provider": r.provider,
        "precision": r.precision,
        "batch": r.batch,
        "what": r.what,
        "steps": r.steps,
        "p50_ms": lat.p50,
        "p90_ms": lat.p90,
        "p99_ms": lat.p99,
        "mean_ms": lat.mean,
        "min_ms": lat.min,
        "max_ms": lat.max,
        "std_ms": lat.std,
        "n": lat.n,
        "latency_per_image_ms": r.latency_per_image_ms,
        "throughput_img_s": r.throughput_img_s,
        "gflop_s": r.gflop_s,
        "gpu_p50_ms": r.gpu_ms.p50 if r.gpu_ms else None,
        "rounds": len(r.round_p50_ms or []) or None,
        "peak_rss_mb": r.peak_rss_mb,
        "rss_growth_mb": r.rss_growth_mb,
        "process_peak_rss_mb": r.process_peak_rss_mb,
        "vdd_in_mean_mw": tegra.total_power_mw() if tegra else None,
        "energy_per_image_j": tegra.energy_per_image_j if tegra else None,
        "interrupted": r.interrupted,
    }


def save_csv(path: str | os.PathLike, records: list[BenchRecord]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_FIELDS))
    writer.writeheader()
    for r in records:
        writer.writerow(csv_row(r))
    write_text_atomic(path, buffer.getvalue())


def markdown(records: list[BenchRecord]) -> str:
    """A comparison table, ratios against the first record of each batch size (with their 95%
    bootstrap intervals over interleaved rounds); memory is each model's own RSS growth."""
    lines = [
        "| model | backend | precision | batch | what | calls | p50 ms | p90 ms | p99 ms | img/s | GFLOP/s "
        "| vs first (95% CI) | GPU p50 ms | RSS growth MB | power mW | J/image | device |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in comparison_rows(records):
        r, c = row.record, csv_row(row.record)
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lines.append(
            f"| {r.model} | {r.backend} | {r.precision} | {r.batch} | {r.what} | {c['n']} | "
            f"{c['p50_ms']:.3f} | {fmt(c['p90_ms'], '.3f')} | {fmt(c['p99_ms'], '.3f')} | "
            f"{c['throughput_img_s']:.1f} | {fmt(c['gflop_s'], '.2f')} | {row.speedup_text()} | "
            f"{fmt(c['gpu_p50_ms'], '.3f')} | "
            f"{c['rss_growth_mb']:.0f} | {fmt(c['vdd_in_mean_mw'], '.0f')} | "
            f"{fmt(c['energy_per_image_j'], '.4f')} | {r.env.machine()} |"
        )
    notes = []
    if any(r.random_weights for r in records):
        notes.append("Models marked with random weights are presets: latency is meaningful, images are not.")
    if any(r.interrupted for r in records):
        notes.append("Some runs were interrupted (Ctrl-C): their statistics cover fewer calls.")
    return "\n".join([*lines, "", *notes]) + "\n"
