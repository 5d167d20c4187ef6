"""A bench record: its schema (one `edgedit bench` measurement) and its JSON files. Torch-free."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, RootModel

from edgedit.bench.stats import LatencyStats
from edgedit.contract.config import ModelConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.jetson import JetsonFacts, TegrastatsSummary
from edgedit.contract.schema import MAX_BATCH, Name, OpenRecord, Record, Sha256, load_json, parse
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


class Warmup(Record):
    """The untimed calls before a record's timed ones (`harness.settle`)."""

    calls: int = Field(ge=0)
    seconds: float = Field(ge=0)
    settled: bool


class Environment(OpenRecord):
    """The machine a record was measured on."""

    platform: str
    edgedit: str | None = None
    python: str | None = None
    cpu: str | None = None
    device: str | None = None  # the backend's device (a provider, a GPU)
    packages: dict[str, str] = Field(default_factory=dict)
    jetson: JetsonFacts | None = None

    def machine(self) -> str:
        """The machine in words: the Jetson module with its power mode and clock pinning, else the CPU."""
        jet = self.jetson
        if jet is not None:
            mode = (jet.nvpmodel.name if jet.nvpmodel else None) or "?"
            return f"{jet.model or 'Jetson'} ({mode}, jetson_clocks {'on' if jet.jetson_clocks else 'off'})"
        return self.cpu or self.platform


class RecordTegrastats(TegrastatsSummary):
    """tegrastats over a record's own slices of the interleaved rounds."""

    ram_delta_mb: float | None = None  # RAM in use at the slices' peak minus just before the model was loaded
    energy_per_image_j: float | None = Field(default=None, ge=0)

    def total_power_mw(self) -> float | None:
        """Mean power on the module's total rail, if the lines carried one."""
        stat = self.power_mw.get(self.energy_rail) if self.energy_rail else None
        return stat.mean if stat is not None else None


class BenchRecord(OpenRecord):
    """One `edgedit bench` measurement: what the harness makes, the JSON file holds, and the reports,
    plots, `design sweep` and `edgedit models --calibrate` read. Fields added later have defaults,
    so that files from earlier versions still read."""

    model: Name
    model_sha256: Sha256 | None = None  # None: not a file (a preset)
    backend: Name
    provider: str
    precision: str
    batch: int = Field(ge=1, le=MAX_BATCH)
    what: Literal["model", "sampler"]
    steps: int | None = Field(default=None, ge=1)
    network_evaluations_per_call: int = Field(ge=1)
    latency_ms: LatencyStats
    round_p50_ms: list[Annotated[float, Field(gt=0)]] | None = Field(default=None, max_length=10_000)  # per round
    warmup: Warmup | None = None
    latency_per_image_ms: float = Field(ge=0)
    throughput_img_s: float = Field(ge=0)
    gflop_s: float | None = Field(default=None, ge=0)
    gpu_ms: LatencyStats | None = None  # CUDA-event time per call (TensorRT)
    peak_rss_mb: float = Field(ge=0)  # this model's peak (from its load on)
    rss_growth_mb: float  # this model's: from before it was loaded to that peak
    process_peak_rss_mb: float | None = Field(default=None, ge=0)
    gpu_memory: dict[str, int] | None = None  # bytes: the engine's plan, activations, load delta; the GPU's
    random_weights: bool
    fid: float | None = Field(default=None, ge=0)  # the model file's recorded evaluation (`eval --save`)
    config: ModelConfig  # what `edgedit models --calibrate` fits a device's times to
    cuda_graph: bool = False
    env: Environment
    tegrastats: RecordTegrastats | None = None
    interrupted: bool


class _BenchFile(RootModel[list[BenchRecord]]):
    pass


def load_records(paths: list[str | os.PathLike]) -> list[BenchRecord]:
    """Records of `edgedit bench --json` files (a folder: its *.bench.json), each checked against the schema."""
    records = []
    fix = "expected the output of `edgedit bench --json`"
    for path in bench_files(paths):
        data = load_json(path, "bench record file", fix)
        if isinstance(data, dict) and "records" in data:
            data = data["records"]
        records += parse(_BenchFile, data, path, "bench record file", fix).root
    return records


def save_json(path: str | os.PathLike, records: list[BenchRecord]) -> None:
    write_text_atomic(path, json.dumps([r.model_dump(mode="json") for r in records], indent=2))
