"""Bench results as files: JSON records, CSV, a Markdown comparison, and a latency plot. Torch-free."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, RootModel

from edgedit.bench.harness import CSV_FIELDS, comparison_rows, csv_row
from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.schema import MAX_BATCH, Name, OpenRecord, Record, load_json, parse
from edgedit.contract.staging import write_text_atomic


def bench_files(paths: list[str | os.PathLike]) -> list[Path]:
    """The files given, with a folder standing for its `*.bench.json` (a jetson/bench_suite.sh results folder)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.bench.json"))
            if not found:
                raise EdgeditError(
                    f"{path}: a folder without *.bench.json files (from `edgedit bench --json` or "
                    "jetson/bench_suite.sh)"
                )
            files += found
        else:
            files.append(path)
    return files


class LatencyRecord(Record):
    n: int = Field(ge=1)
    min: float = Field(ge=0)
    mean: float = Field(ge=0)
    p50: float = Field(ge=0)
    p90: float | None = Field(ge=0)  # None: too few calls for it (edgedit.bench.stats)
    p99: float | None = Field(ge=0)
    max: float = Field(ge=0)
    std: float = Field(ge=0)


class EnvironmentRecord(OpenRecord):
    platform: str
    jetson: dict[str, Any] | None = None
    cpu: str | None = None


class BenchRecord(OpenRecord):
    """One `edgedit bench` measurement, as the reports and `edgedit models --calibrate` read it."""

    model: Name
    backend: Name
    provider: str
    precision: str
    batch: int = Field(ge=1, le=MAX_BATCH)
    what: Literal["model", "sampler"]
    steps: int | None = Field(default=None, ge=1)
    network_evaluations_per_call: int = Field(ge=1)
    latency_ms: LatencyRecord
    latency_per_image_ms: float = Field(ge=0)
    throughput_img_s: float = Field(ge=0)
    gflop_s: float | None = Field(default=None, ge=0)
    gpu_ms: LatencyRecord | None = None
    round_p50_ms: list[float] | None = Field(default=None, max_length=10_000)  # per interleaved round
    peak_rss_mb: float = Field(ge=0)  # this model's peak (from its load on)
    rss_growth_mb: float  # this model's: from before it was loaded to that peak
    process_peak_rss_mb: float | None = Field(default=None, ge=0)
    random_weights: bool
    fid: float | None = Field(default=None, ge=0)  # the model file's recorded evaluation (`eval --save`)
    config: dict[str, Any]
    cuda_graph: bool = False
    env: EnvironmentRecord
    tegrastats: dict[str, Any] | None = None
    interrupted: bool


class _BenchFile(RootModel[list[BenchRecord]]):
    pass


def load_records(paths: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """Records of `edgedit bench --json` files (a folder: its *.bench.json), each checked against the schema."""
    records = []
    fix = "expected the output of `edgedit bench --json`"
    for path in bench_files(paths):
        data = load_json(path, "bench record file", fix)
        if isinstance(data, dict) and "records" in data:
            data = data["records"]
        for record in parse(_BenchFile, data, path, "bench record file", fix).root:
            try:
                DiTConfig.from_dict(record.config)
            except EdgeditError as err:
                raise EdgeditError(f"{path}: record of {record.model}: {err}") from None
            records.append(record.model_dump())
    return records


def save_json(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    write_text_atomic(path, json.dumps(records, indent=2))


def save_csv(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_FIELDS))
    writer.writeheader()
    for r in records:
        writer.writerow(csv_row(r))
    write_text_atomic(path, buffer.getvalue())


def _device(r: dict[str, Any]) -> str:
    jet = r["env"].get("jetson")
    if jet:
        mode = (jet.get("nvpmodel") or {}).get("name") or "?"
        return f"{jet.get('model') or 'Jetson'} ({mode}, jetson_clocks {'on' if jet.get('jetson_clocks') else 'off'})"
    return f"{r['env'].get('cpu') or r['env'].get('platform')}"


def speedup_text(r: dict[str, Any]) -> str:
    """'1.38x (1.30-1.45)': the ratio to the first row and its 95% interval when there is one."""
    ci = r.get("speedup_ci")
    return f"{r['speedup_vs_first']:.2f}x" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")


def markdown(records: list[dict[str, Any]]) -> str:
    """A comparison table, ratios against the first record of each batch size (with their 95%
    bootstrap intervals over interleaved rounds); memory is each model's own RSS growth."""
    lines = [
        "| model | backend | precision | batch | what | calls | p50 ms | p90 ms | p99 ms | img/s | GFLOP/s "
        "| vs first (95% CI) | GPU p50 ms | RSS growth MB | power mW | J/image | device |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in comparison_rows(records):
        c = csv_row(r)
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['precision']} | {r['batch']} | {r['what']} | {c['n']} | "
            f"{c['p50_ms']:.3f} | {fmt(c['p90_ms'], '.3f')} | {fmt(c['p99_ms'], '.3f')} | "
            f"{c['throughput_img_s']:.1f} | {fmt(c['gflop_s'], '.2f')} | {speedup_text(r)} | "
            f"{fmt(c['gpu_p50_ms'], '.3f')} | "
            f"{c['rss_growth_mb']:.0f} | {fmt(c['vdd_in_mean_mw'], '.0f')} | "
            f"{fmt(c['energy_per_image_j'], '.4f')} | {_device(r)} |"
        )
    notes = []
    if any(r.get("random_weights") for r in records):
        notes.append("Models marked with random weights are presets: latency is meaningful, images are not.")
    if any(r.get("interrupted") for r in records):
        notes.append("Some runs were interrupted (Ctrl-C): their statistics cover fewer calls.")
    return "\n".join([*lines, "", *notes]) + "\n"
