"""`edgedit bench`: latency, memory and power of models on backends, one record per model x backend x batch.

What is timed: `model` = one network call on fixed inputs; `sampler` = generating `batch` images
end to end (noise from seeds, every network evaluation, host<->device copies). Host wall clock
(perf_counter_ns) for every backend; the TensorRT backend adds its CUDA-event GPU time per call.
Each model is loaded and warmed up in turn (untimed calls until the median of consecutive windows
settles, bounded in time), which is when its memory is measured: host RSS growth from before it
was loaded to its peak (the process peak is a field of its own), GPU memory for CUDA backends.
Then every record's timed calls run in interleaved rounds, so that the machine's slow start and
drifts fall on all of them alike (bench/comparison.py gives ratios between records bootstrap
intervals over the rounds). On a Jetson, tegrastats runs alongside: shared RAM, power per rail and energy per image
from the samples inside each record's own slices of the rounds. Torch-free.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedit import __version__
from edgedit.bench.records import BenchRecord, Environment, RecordTegrastats, Warmup
from edgedit.bench.stats import LatencyStats
from edgedit.bench.tegrastats import TegrastatsSampler, summarize
from edgedit.contract import jetson
from edgedit.contract.errors import BackendFailed, EdgeditError
from edgedit.contract.fileio import sha256_file
from edgedit.contract.schema import MAX_BATCH
from edgedit.cost.accounting import count_macs
from edgedit.runtime.backends import Backend, RunOptions, backends_for, load_backend, pad_batch
from edgedit.runtime.noise import noise_from_seeds
from edgedit.runtime.samplers import generate, network_evaluations

log = logging.getLogger("edgedit")

WHAT = ("model", "sampler")
MAX_BATCH_SIZES = 16  # batch sizes in one run: every power of two up to MAX_BATCH (13) fits
MAX_DURATION_S = 86400  # timed seconds per record: a day
MAX_ROUNDS = 10_000


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
    rounds: int = 10  # the timed calls of every record, interleaved in this many rounds
    warmup_s: float = 2.0  # at most this long for a record's warm-up to settle (after its --warmup calls)

    def __post_init__(self) -> None:
        """Every value checked where settings are made: a bad one is bad usage (exit 2)."""
        self.batches = list(dict.fromkeys(self.batches))  # a size given twice is measured once
        if not self.batches or any(not 1 <= b <= MAX_BATCH for b in self.batches):
            raise EdgeditError(f"`batches` sizes must be 1..{MAX_BATCH}, e.g. 1,4,8 (got {self.batches})")
        if len(self.batches) > MAX_BATCH_SIZES:
            raise EdgeditError(
                f"`batches` lists {len(self.batches)} sizes; at most {MAX_BATCH_SIZES} are measured "
                "in one run (each is a record of its own)"
            )
        if (self.iters is None) == (self.duration_s is None):
            raise EdgeditError("give one of `iters` and `duration_s`")
        if self.duration_s is not None and not (
            math.isfinite(self.duration_s) and 0 < self.duration_s <= MAX_DURATION_S
        ):
            raise EdgeditError(
                f"`duration_s` must be a number of seconds in (0, {MAX_DURATION_S}] (got {self.duration_s})"
            )
        if not 0 <= self.warmup <= 10**6 or (self.iters is not None and not 1 <= self.iters <= 10**7):
            raise EdgeditError("`warmup` must be 0..1000000 and `iters` 1..10000000")
        if self.steps is not None and not 1 <= self.steps <= 1000:
            raise EdgeditError(f"`steps` must be 1..1000 (got {self.steps})")
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise EdgeditError(f"`rounds` must be 1..{MAX_ROUNDS} (got {self.rounds})")
        if not (math.isfinite(self.warmup_s) and 0 <= self.warmup_s <= 3600):
            raise EdgeditError(f"`warmup_s`, the warm-up's time bound, must be 0..3600 s (got {self.warmup_s})")
        if self.what not in WHAT:
            raise EdgeditError(f"`what` must be model or sampler (got {self.what!r})")

    @classmethod
    def from_options(
        cls,
        *,
        batches: list[int] | None,
        warmup: int = 5,
        iters: int | None = None,
        duration_s: float | None = None,
        what: str = "model",
        steps: int | None = None,
        tegrastats: bool = False,
        rounds: int = 10,
    ) -> BenchSettings:
        """`edgedit bench`'s options: timed for 3 s unless --iters or --duration says otherwise."""
        if iters is not None and duration_s is not None:
            raise EdgeditError("`iters` and `duration_s` exclude each other")
        return cls(
            batches or [],
            warmup,
            iters,
            duration_s if duration_s is not None or iters else 3.0,
            what,
            steps,
            tegrastats,
            rounds=rounds,
        )


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


def environment(backend: Backend) -> Environment:
    from edgedit.contract.device import PACKAGES, package_version

    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = (
            next(
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            )
            or cpu
        )
    wanted = {"numpy", "onnxruntime", "onnxruntime-gpu", "tensorrt", "torch"}
    return Environment(
        edgedit=__version__,
        python=sys.version.split()[0],
        platform=f"{platform.system()} {platform.machine()}",
        cpu=cpu,
        device=backend.device,
        packages={d: v for d, m in PACKAGES if d in wanted and (v := package_version(d, m))},
        jetson=jetson.probe(),
    )


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


@dataclass
class _Row:
    """One record in the making: a model on a backend at one batch size."""

    backend: Backend
    model: str
    batch: int
    call: Callable[[], None]
    evaluations: int
    steps: int | None
    warmup: Warmup
    rss_growth_mb: float  # from before its model was loaded to its peak
    peak_rss_mb: float
    load_started: float  # monotonic time its model's loading began
    samples: list[float] = field(default_factory=list)  # ms per timed call
    round_p50: list[float] = field(default_factory=list)  # ms, the median of each round's calls
    gpu_times: list[float] = field(default_factory=list)
    slices: list[tuple[float, float]] = field(default_factory=list)  # monotonic spans of its timed calls

    def timed_call(self) -> float:
        start = time.perf_counter_ns()
        self.call()
        ms = (time.perf_counter_ns() - start) / 1e6
        if getattr(self.backend, "last_gpu_ms", None) is not None:
            self.gpu_times.append(self.backend.last_gpu_ms)
        return ms


def _call(
    backend: Backend, model: str, batch: int, settings: BenchSettings
) -> tuple[Callable[[], None], int, int | None]:
    """(the call to time, network evaluations per call, sampler steps) for one record."""
    meta = backend.meta
    if settings.what == "sampler" and meta.sampler.type == "one-step":  # --steps is for multi-step models
        return lambda: generate(backend, range(batch), batch=batch), 1, None
    if settings.what == "sampler":
        steps = settings.steps or meta.sampler.steps
        evaluations = network_evaluations(steps, meta.sampler.sampler)
        return lambda: generate(backend, range(batch), batch=batch, steps=steps), evaluations, steps
    lo, hi = meta.batch["min"], meta.batch["max"]
    if not lo <= batch <= hi:
        raise EdgeditError(
            f"{model}: batch {batch} is outside its batch range {lo}..{hi}; export or build it "
            f"with a static batch of {batch} or a dynamic batch range that covers it"
        )
    feeds = pad_batch(fixed_inputs(backend, batch), batch)
    return lambda: backend.run(feeds), 1, None


def settle(
    call: Callable[[], object],
    calls: int,
    max_seconds: float,
    window: int = 5,
    tolerance: float = 0.05,
    clock: Callable[[], float] = time.perf_counter,
) -> Warmup:
    """Untimed calls until the machine and the backend have settled: at least `calls`, then windows of
    `window` calls until two consecutive window medians agree within `tolerance`, for at most
    `max_seconds` (the first calls of a run are slow: caches, allocators, clocks ramping up)."""
    start, times, medians, settled = clock(), [], [], False
    while len(times) < calls or not (settled or clock() - start >= max_seconds):
        t0 = clock()
        call()
        times.append(clock() - t0)
        if len(times) % window == 0:
            medians.append(float(np.median(times[-window:])))
            settled = len(medians) >= 2 and abs(medians[-1] - medians[-2]) <= tolerance * medians[-2]
    return Warmup(calls=len(times), seconds=clock() - start, settled=settled)


def run_bench(
    models: list[str],
    backends: list[str],
    settings: BenchSettings,
    run: RunOptions | None = None,
    progress: Callable[[str, int], Callable[[float], None]] | None = None,
    on_skip: Callable[[str], None] = log.warning,
) -> tuple[list[BenchRecord], bool]:
    """(records, interrupted): every model x backend x batch. Each model is loaded and warmed up in
    turn (which is when its memory is measured), then the timed calls run in interleaved rounds,
    every record once per round, so that no record pays alone for the machine's slow start or a
    drift. A backend that fails on this machine (BackendFailed) skips its rows with one line to
    `on_skip` and the others carry on. Ctrl-C keeps the records measured so far."""
    rows: list[_Row] = []
    # tegrastats from the first load on: on a Jetson a model's RAM (shared with the GPU) is its delta.
    sampler = TegrastatsSampler(settings.tegrastats_interval_ms) if settings.tegrastats else None
    with sampler if sampler is not None else contextlib.nullcontext():
        if sampler is not None:
            sampler.wait()  # a reading from before the first load
        for model in models:
            for kind in backends_for(model, backends):
                reset_peak_rss()
                rss_before, load_started = current_rss_mb(), time.monotonic()
                try:
                    backend = load_backend(model, kind, run)
                except BackendFailed as err:
                    on_skip(f"{Path(model).name} on {kind}: skipped, {err}")
                    continue
                for batch in settings.batches:
                    call, evaluations, steps = _call(backend, model, batch, settings)
                    try:
                        warm = settle(call, settings.warmup, settings.warmup_s)
                    except BackendFailed as err:
                        on_skip(f"{Path(model).name} on {backend.name} at batch {batch}: skipped, {err}")
                        continue
                    peak = peak_rss_mb()
                    growth = peak - rss_before
                    rows.append(_Row(backend, model, batch, call, evaluations, steps, warm, growth, peak, load_started))
        interrupted = _timed_rounds(rows, settings, progress) if rows else False
    return [make_record(row, settings, sampler) for row in rows if row.samples], interrupted


def _timed_rounds(rows: list[_Row], settings: BenchSettings, progress) -> bool:
    """Every row once per round, the order rotating; True when Ctrl-C stopped them."""
    rounds = min(settings.rounds, settings.iters) if settings.iters else settings.rounds
    hooks = [
        progress(f"{Path(r.model).name} {r.backend.name} {r.backend.precision} batch {r.batch}", r.batch)
        if progress
        else None
        for r in rows
    ]
    try:
        for k in range(rounds):
            for i in [(k + j) % len(rows) for j in range(len(rows))]:
                row, hook = rows[i], hooks[i]
                calls = settings.iters // rounds + (k < settings.iters % rounds) if settings.iters else None
                deadline = time.perf_counter() + settings.duration_s / rounds if calls is None else None
                times, begun = [], time.monotonic()
                while (calls is not None and len(times) < calls) or (
                    deadline is not None and (not times or time.perf_counter() < deadline)
                ):
                    times.append(row.timed_call())
                    row.samples.append(times[-1])
                    if hook is not None:
                        hook(times[-1])
                row.round_p50.append(float(np.median(times)))
                row.slices.append((begun, time.monotonic()))
    except KeyboardInterrupt:
        return True
    return False


def recorded_fid(source: dict[str, Any]) -> float | None:
    """The FID the model's source records (a checkpoint's `eval --save`, carried into its exports), if
    it is a plain non-negative number: the source is the file's own, unvalidated metadata."""
    fid = source.get("fid")
    ok = isinstance(fid, (int, float)) and not isinstance(fid, bool) and math.isfinite(fid) and fid >= 0
    return float(fid) if ok else None


def make_record(row: _Row, settings: BenchSettings, sampler: TegrastatsSampler | None) -> BenchRecord:
    path, backend, batch = Path(row.model), row.backend, row.batch
    stats = LatencyStats.from_samples(np.asarray(row.samples))
    return BenchRecord(
        model=path.name if path.exists() else row.model,
        model_sha256=sha256_file(path) if path.is_file() else None,
        backend=backend.name,
        provider=backend.device,
        precision=backend.precision,
        batch=batch,
        what=settings.what,
        steps=row.steps,
        network_evaluations_per_call=row.evaluations,
        latency_ms=stats,
        round_p50_ms=row.round_p50,
        warmup=row.warmup,
        latency_per_image_ms=stats.p50 / batch,
        throughput_img_s=batch * 1000 / stats.mean,
        # Matrix-product work done per second at the median call (2 FLOPs per MAC; accounting's MACs).
        gflop_s=2 * count_macs(backend.meta.config) * batch * row.evaluations / (stats.p50 / 1000) / 1e9,
        gpu_ms=LatencyStats.from_samples(np.asarray(row.gpu_times)) if row.gpu_times else None,
        peak_rss_mb=row.peak_rss_mb,
        rss_growth_mb=row.rss_growth_mb,
        process_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        gpu_memory=backend.gpu_memory() if hasattr(backend, "gpu_memory") else None,
        random_weights=backend.meta.random_weights,
        fid=recorded_fid(backend.meta.source),
        config=backend.meta.config,
        cuda_graph=bool(getattr(backend, "use_cuda_graph", False)),
        env=environment(backend),
        tegrastats=_tegrastats(row, settings, sampler, stats.n),
        interrupted=len(row.round_p50) < (min(settings.rounds, settings.iters) if settings.iters else settings.rounds),
    )


def _tegrastats(
    row: _Row, settings: BenchSettings, sampler: TegrastatsSampler | None, calls: int
) -> RecordTegrastats | None:
    """tegrastats over the row's own slices of the interleaved rounds, each sample standing for one
    sampling interval; None without a sampler on this machine."""
    if sampler is None or not sampler.available():
        return None
    mine = [s for s in sampler.samples if any(a <= s.host_time <= b for a, b in row.slices)]
    summary = summarize(mine, settings.tegrastats_interval_ms)
    before = [s.ram_used_mb for s in sampler.samples if s.host_time <= row.load_started]
    peak = summary.ram_used_mb.peak if summary.ram_used_mb else None
    return RecordTegrastats(
        **dict(summary),
        # RAM in use at its slices' peak minus just before its model was loaded (the GPU's share included).
        ram_delta_mb=peak - before[-1] if before and peak is not None else None,
        energy_per_image_j=summary.energy_j / (calls * row.batch) if summary.energy_j else None,
    )
