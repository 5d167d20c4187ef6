"""`edgedit bench`: latency, memory and power of models on backends, one record per model x backend x batch.

What is timed: `model` = one network call on fixed inputs; `sampler` = generating `batch` images
end to end (noise from seeds, every network evaluation, host<->device copies). Host wall clock
(perf_counter_ns) for every backend; the TensorRT backend adds its CUDA-event GPU time per call.
Warm-up calls are excluded. Memory: peak host RSS of the process and its growth from before the
model was loaded; GPU memory in use for CUDA backends; on a Jetson, shared RAM, power per rail
and energy per image from tegrastats sampled alongside the timed calls. Torch-free.
"""

from __future__ import annotations

import contextlib
import math
import platform
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedit import __version__
from edgedit.bench.latency import LatencyStats, MeasurementInterrupted, measure
from edgedit.bench.tegrastats import TegrastatsSampler
from edgedit.contract import jetson
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import sha256_file
from edgedit.contract.schema import MAX_BATCH
from edgedit.runtime.backends import Backend, RunOptions, load_backend, pad_batch
from edgedit.runtime.noise import noise_from_seeds
from edgedit.runtime.samplers import generate, network_evaluations

WHAT = ("model", "sampler")


@dataclass
class BenchSettings:
    batches: list[int]
    warmup: int = 5
    iters: int | None = None
    duration_s: float | None = 3.0
    what: str = "model"
    steps: int | None = None
    tegrastats: bool = False
    tegrastats_interval_ms: int = 100

    def __post_init__(self) -> None:
        """Every value checked where settings are made: a bad one is bad usage (exit 2)."""
        if not self.batches or any(not 1 <= b <= MAX_BATCH for b in self.batches):
            raise EdgeditError(f"--batch sizes must be 1..{MAX_BATCH}, e.g. 1,4,8 (got {self.batches})")
        if (self.iters is None) == (self.duration_s is None):
            raise EdgeditError("give one of --iters and --duration")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and 0 < self.duration_s <= 86400):
            raise EdgeditError(f"--duration must be a number of seconds in (0, 86400] (got {self.duration_s})")
        if not 0 <= self.warmup <= 10**6 or (self.iters is not None and not 1 <= self.iters <= 10**7):
            raise EdgeditError("--warmup must be 0..1000000 and --iters 1..10000000")
        if self.steps is not None and not 1 <= self.steps <= 1000:
            raise EdgeditError(f"--steps must be 1..1000 (got {self.steps})")
        if self.what not in WHAT:
            raise EdgeditError(f"--what must be model or sampler (got {self.what!r})")

    @classmethod
    def from_options(cls, *, batches: list[int] | None, warmup: int = 5, iters: int | None = None,
                     duration_s: float | None = None, what: str = "model", steps: int | None = None,
                     tegrastats: bool = False) -> BenchSettings:
        """`edgedit bench`'s options: timed for 3 s unless --iters or --duration says otherwise."""
        if iters is not None and duration_s is not None:
            raise EdgeditError("--iters and --duration exclude each other")
        return cls(batches or [], warmup, iters, duration_s if duration_s is not None or iters else 3.0, what,
                   steps, tegrastats)


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def current_rss_mb() -> float:
    return _status_mb("VmRSS") or float("nan")


def reset_peak_rss() -> None:
    """Restart the peak-RSS count (Linux: '5' into /proc/self/clear_refs resets VmHWM), so that
    each record's peak is its own and not that of everything run before it in this process."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """Peak RSS since the last reset (VmHWM), else of the whole process (getrusage)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment(backend: Backend) -> dict[str, Any]:
    from edgedit.contract.device import PACKAGES, package_version

    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name")) or cpu
    wanted = {"numpy", "onnxruntime", "onnxruntime-gpu", "tensorrt", "torch"}
    return {
        "edgedit": __version__,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu,
        "device": backend.device,
        "packages": {d: v for d, m in PACKAGES if d in wanted and (v := package_version(d, m))},
        "jetson": jetson.probe(),
    }


def fixed_inputs(backend: Backend, batch: int) -> dict[str, np.ndarray]:
    """Inputs for one network call: seeded noise, mid-schedule sigma / timestep, labels 0..C-1."""
    meta = backend.meta
    feeds = {}
    for spec in meta.inputs:
        shape = spec.concrete(batch)
        if spec.name in ("z", "x"):
            feeds[spec.name] = noise_from_seeds(range(batch), shape[1:])
        elif spec.name == "sigma":
            feeds[spec.name] = np.full(shape, 1.0, np.float32)
        elif spec.name == "t":
            feeds[spec.name] = np.full(shape, 500.0, np.float32)
        else:
            feeds[spec.name] = (np.arange(batch) % max(meta.config.num_classes, 1)).astype(np.int32)
    return feeds


def bench_one(backend: Backend, model: str, batch: int, settings: BenchSettings, rss_before: float,
              on_sample: Callable[[float], None] | None = None) -> dict[str, Any]:
    """One record, marked `interrupted` if Ctrl-C stopped it after at least one timed call."""
    meta = backend.meta
    if settings.what == "sampler":
        steps = settings.steps or meta.sampler.get("steps")
        evaluations = 1 if meta.sampler["type"] == "one-step" else network_evaluations(steps, meta.sampler["sampler"])

        def call():
            generate(backend, range(batch), batch=batch, steps=steps)
    else:
        lo, hi = meta.batch["min"], meta.batch["max"]
        if not lo <= batch <= hi:
            raise EdgeditError(f"{model}: batch {batch} is outside its batch range {lo}..{hi}; export or build "
                               f"with --batch {batch} or a --dynamic-batch that covers it")
        evaluations, steps = 1, None
        feeds = pad_batch(fixed_inputs(backend, batch), batch)

        def call():
            backend.run(feeds)

    gpu_times: list[float] = []

    def timed():
        call()
        if getattr(backend, "last_gpu_ms", None) is not None:
            gpu_times.append(backend.last_gpu_ms)

    sampler = TegrastatsSampler(settings.tegrastats_interval_ms) if settings.tegrastats else None
    interrupted = False
    try:
        with sampler if sampler is not None else contextlib.nullcontext():
            stats = measure(timed, settings.warmup, settings.iters, settings.duration_s, on_sample=on_sample)
    except MeasurementInterrupted as stop:
        if stop.stats is None:
            raise  # nothing was measured for this record
        interrupted, stats = True, stop.stats
    record = make_record(backend, model, batch, settings, stats, evaluations, steps, gpu_times, rss_before, sampler)
    record["interrupted"] = interrupted
    return record


def make_record(backend, model, batch, settings, stats: LatencyStats, evaluations, steps, gpu_times, rss_before,
                sampler) -> dict[str, Any]:
    path = Path(model)
    images_per_call = batch
    record = {
        "model": path.name if path.exists() else model,
        "model_sha256": sha256_file(path) if path.is_file() else None,
        "backend": backend.name,
        "provider": backend.device,
        "precision": backend.precision,
        "batch": batch,
        "what": settings.what,
        "steps": steps,
        "network_evaluations_per_call": evaluations,
        "latency_ms": stats.to_dict(),
        "latency_per_image_ms": stats.p50 / images_per_call,
        "throughput_img_s": images_per_call * 1000 / stats.mean,
        "gpu_ms": LatencyStats.from_samples(np.asarray(gpu_times)).to_dict() if gpu_times else None,
        "peak_rss_mb": peak_rss_mb(),
        "rss_growth_mb": peak_rss_mb() - rss_before,
        "gpu_memory": backend.gpu_memory() if hasattr(backend, "gpu_memory") else None,
        "random_weights": backend.meta.random_weights,
        "config": backend.meta.config.to_dict(),  # what `edgedit models --calibrate` fits a device's times to
        "cuda_graph": bool(getattr(backend, "use_cuda_graph", False)),
        "env": environment(backend),
    }
    summary = sampler.summary() if sampler is not None else None
    if summary is not None:
        images = stats.n * images_per_call
        summary["energy_per_image_j"] = summary["energy_j"] / images if summary.get("energy_j") else None
    record["tegrastats"] = summary
    return record


def run_bench(models: list[str], backends: list[str], settings: BenchSettings, run: RunOptions | None = None,
              progress: Callable[[str, int], Callable[[float],
                                                      None]] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """(records, interrupted): every model x backend x batch, stopping cleanly at Ctrl-C."""
    records: list[dict[str, Any]] = []
    for model in models:
        for kind in backends:
            reset_peak_rss()
            rss_before = current_rss_mb()
            backend = load_backend(model, kind, run)
            for batch in settings.batches:
                on_sample = progress(f"{Path(model).name} {backend.name} {backend.precision} batch {batch}", batch) \
                    if progress else None
                try:
                    records.append(bench_one(backend, model, batch, settings, rss_before, on_sample))
                except MeasurementInterrupted:
                    return records, True
                if records[-1]["interrupted"]:
                    return records, True
    return records, False


def comparison_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each record with its speed relative to the first record of the same batch (and `what`)."""
    firsts: dict[tuple, dict] = {}
    rows = []
    for r in records:
        key = (r["batch"], r["what"])
        first = firsts.setdefault(key, r)
        rows.append({**r, "speedup_vs_first": first["latency_ms"]["p50"] / r["latency_ms"]["p50"]})
    return rows


CSV_FIELDS = ("model", "backend", "provider", "precision", "batch", "what", "steps", "p50_ms", "p90_ms", "p99_ms",
              "mean_ms", "min_ms", "max_ms", "std_ms", "n", "latency_per_image_ms", "throughput_img_s", "gpu_p50_ms",
              "peak_rss_mb", "rss_growth_mb", "vdd_in_mean_mw", "energy_per_image_j", "interrupted")


def csv_row(r: dict[str, Any]) -> dict[str, Any]:
    lat, tegra = r["latency_ms"], r.get("tegrastats") or {}
    power = (tegra.get("power_mw") or {}).get(tegra.get("energy_rail") or "", {}) or {}
    return {"model": r["model"], "backend": r["backend"], "provider": r["provider"], "precision": r["precision"],
            "batch": r["batch"], "what": r["what"], "steps": r["steps"], "p50_ms": lat["p50"], "p90_ms": lat["p90"],
            "p99_ms": lat["p99"], "mean_ms": lat["mean"], "min_ms": lat["min"], "max_ms": lat["max"],
            "std_ms": lat["std"], "n": lat["n"], "latency_per_image_ms": r["latency_per_image_ms"],
            "throughput_img_s": r["throughput_img_s"], "gpu_p50_ms": (r.get("gpu_ms") or {}).get("p50"),
            "peak_rss_mb": r["peak_rss_mb"], "rss_growth_mb": r["rss_growth_mb"], "vdd_in_mean_mw": power.get("mean"),
            "energy_per_image_j": tegra.get("energy_per_image_j"), "interrupted": r.get("interrupted", False)}
