"""`edgedit design sweep`: the design-space exploration of the paper, on our own data.

For each parameter budget, candidate DiT-Nano students span deep-narrow to shallow-wide with
several head counts (each depth gets the width whose size lands closest to the budget); every
candidate x method is distilled from the same pairs with the same schedule, evaluated (domain or
Inception FID on the same seeds), sized (exact params and MACs), timed (measured latency on the
chosen backend at batch 1) and costed on a Jetson Orin Nano (the calibrated device latency estimate,
FP16/INT8). Each result is
its own JSON file, written when its candidate is done: a re-run skips finished candidates, and
`--shard I/N` workers writing into the same folder (or folders merged by copying) give one table.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedit.contract import artefacts
from edgedit.contract.config import DiTConfig, names_a_file
from edgedit.contract.errors import EdgeditError
from edgedit.contract.schema import check_shard, load_json, parse
from edgedit.contract.staging import write_text_atomic
from edgedit.cost import accounting
from edgedit.design.results import MeasuredLatency, SweepResult
from edgedit.models.checkpoint import read_checkpoint
from edgedit.train.distill import ta_misfit
from edgedit.train.trainer import SampleGrids

log = logging.getLogger("edgedit")

DEFAULT_DEPTHS = (2, 3, 4, 6, 8, 12)
DEFAULT_HEADS = (2, 4, 8)
WIDTHS = tuple(range(32, 769, 16))
BUDGET_TOLERANCE = 0.2  # candidates within +-20% of the budget


@dataclass(frozen=True)
class Candidate:
    budget: int
    config: DiTConfig
    method: str

    @property
    def name(self) -> str:
        c = self.config
        return f"b{self.budget}-L{c.depth}-D{c.hidden_size}-H{c.num_heads}-{self.method}"


MAX_BUDGET = 1e10  # parameters: far beyond any DiT a sweep could train here


def parse_budget(text: str) -> int:
    """'500k', '1M', '1.5M' or a plain number of parameters."""
    text = text.strip().lower()
    scale = {"k": 1e3, "m": 1e6}.get(text[-1:], 1)
    try:
        count = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        count = math.nan
    if not 1 <= count <= MAX_BUDGET:  # also NaN and infinity
        raise EdgeditError(
            f"`budget` '{text}' is not a parameter count like 500k, 1M or 1.5M (1 to {MAX_BUDGET:.0e} parameters)"
        )
    return int(count)


def candidates_for(
    budget: int, base: DiTConfig, depths=DEFAULT_DEPTHS, heads=DEFAULT_HEADS, widths=WIDTHS, methods=("output",)
) -> list[Candidate]:
    """One width per (depth, heads): the one whose parameter count is closest to `budget`, if within tolerance."""
    found = []
    for depth in depths:
        for h in heads:
            options = []
            for width in widths:
                if width % h or width % 4 or width // h < 8:
                    continue
                cfg = base.replace(depth=depth, hidden_size=width, num_heads=h)
                options.append((abs(accounting.count_params(cfg) - budget), cfg))
            if options:
                error, cfg = min(options, key=lambda o: o[0])
                if error <= BUDGET_TOLERANCE * budget:
                    found += [Candidate(budget, cfg, m) for m in methods]
    if not found:
        raise EdgeditError(
            f"no candidate within {BUDGET_TOLERANCE:.0%} of {budget:,} parameters; widen `depths`/`heads`"
        )
    return found


def result_path(out: Path, candidate: Candidate | SweepResult) -> Path:
    return out / candidate.name / "result.json"


def read_result(path: Path) -> SweepResult | None:
    """A candidate's result.json, or None when it is missing or fails the results schema (the
    candidate is then run again: its training resumes from its state)."""
    try:
        return parse(SweepResult, load_json(path, "candidate result"), path, "candidate result")
    except EdgeditError as err:
        if path.exists():
            log.warning("%s; running that candidate again", err)
        return None


def write_result(out: Path, result: SweepResult) -> None:
    """The candidate's result.json; device estimates are the reports' (they follow the calibration in force)."""
    write_text_atomic(result_path(out, result), result.model_dump_json(indent=2, exclude={"device_estimates"}))


def finished(out: Path, candidate: Candidate) -> SweepResult | None:
    result = read_result(result_path(out, candidate))
    return result if result is not None and result.name == candidate.name else None


def timing_model(student: Path, backend: str, folder: Path) -> str:
    """What to time for `backend`: an ONNX export of the student (batch 1) for ONNX Runtime, else the checkpoint."""
    if backend != "onnxruntime":
        return str(student)
    from edgedit.export.exporter import BatchSpec, export_onnx
    from edgedit.models.checkpoint import load_model

    net, _ = load_model(student)
    return str(export_onnx(net, folder / "student.onnx", {"checkpoint": student.name}, BatchSpec.static(1)).path)


def time_models(models: list[str], backend: str, seconds: float, rounds: int = 10) -> list[MeasuredLatency]:
    """Per model, its network call at batch 1 on one thread: `seconds` of timed calls in `rounds`
    rounds interleaved with the other models' (edgedit bench's harness); p50 is the median of the
    rounds' medians, which a drifting machine moves least."""
    from edgedit.bench.harness import BenchSettings, run_bench
    from edgedit.runtime.backends import RunOptions

    records, _ = run_bench(
        models, [backend], BenchSettings([1], warmup=5, duration_s=seconds, rounds=rounds), RunOptions(threads=1)
    )
    return [
        MeasuredLatency(
            backend=f"{r.backend} ({r.provider}, 1 thread)",
            p50_ms=statistics.median(r.round_p50_ms),
            p90_ms=r.latency_ms.p90,
            rounds_p50_ms=r.round_p50_ms,
            machine=r.env.machine(),
        )
        for r in records
    ]


def measure_latency(student: Path, backend: str, folder: Path, seconds: float) -> MeasuredLatency:
    return time_models([timing_model(student, backend, folder)], backend, seconds)[0]


@dataclass(frozen=True, kw_only=True)
class SweepOptions:
    pairs: Path  # the teacher pairs every candidate learns
    output: Path  # the sweep folder
    budgets: tuple[int, ...]  # parameter budgets
    settings: Any  # TrainSettings, the same for every candidate
    methods: tuple[str, ...] = ("output",)
    depths: tuple[int, ...] = DEFAULT_DEPTHS
    heads: tuple[int, ...] = DEFAULT_HEADS
    widths: tuple[int, ...] = WIDTHS
    ta: str | None = None  # the TA shared by the sweep (a preset is distilled once)
    shard: tuple[int, int] = (0, 1)  # (this worker, workers)
    eval_data: str = "digits"
    eval_samples: int = 500
    latency_backend: str = "onnxruntime"
    latency_seconds: float = 1.0


def run_candidate(candidate: Candidate, o: SweepOptions, ta: str | None, say) -> SweepResult:
    from edgedit.eval.evaluate import evaluate
    from edgedit.models.checkpoint import save_model
    from edgedit.models.dit import DiT
    from edgedit.train.distill import DistillOptions, distill

    out, settings = Path(o.output), o.settings
    folder = out / candidate.name
    folder.mkdir(parents=True, exist_ok=True)
    cfg = candidate.config
    start_ckpt = folder / "init.safetensors"  # the candidate's architecture as a checkpoint: exact, no overrides
    if not start_ckpt.exists():
        import torch

        torch.manual_seed(settings.seed)
        save_model(DiT(cfg), start_ckpt, provenance={"role": "sweep initial weights"})
    student = folder / "student.safetensors"
    student = distill(
        DistillOptions(
            pairs=o.pairs,
            output=student,
            settings=settings,
            student=str(start_ckpt),
            method=candidate.method,
            ta=ta if candidate.method == "ta" else None,
            resume=artefacts.train_state(student).exists(),
        ),
        on_sample=SampleGrids(student),
        say=say,
    )  # a final grid per candidate, to look at
    report = evaluate(student, o.eval_data, n=o.eval_samples)
    metrics = report.metrics
    fid = next(m for m in metrics if m.metric in ("FID (Inception)", "FID"))
    # Methods share an architecture's latency, measured once: they differ in quality only.
    same = [r.latency for r in collect(out) if r.config == cfg]
    latency = same[0] if same else measure_latency(student, o.latency_backend, folder, o.latency_seconds)
    result = SweepResult(
        name=candidate.name,
        budget=candidate.budget,
        method=candidate.method,
        config=cfg,
        depth=cfg.depth,
        width=cfg.hidden_size,
        heads=cfg.num_heads,
        params=accounting.count_params(cfg),
        macs=accounting.count_macs(cfg),
        fid=fid.value,
        fid_metric=f"{fid.metric} [{fid.features}; {fid.samples} samples; vs {fid.reference}]",
        metrics=metrics,
        steps=settings.steps,
        batch=settings.batch,
        lr=settings.lr,
        latency=latency,  # device estimates are added by write_reports, from the calibration in force
    )
    write_result(out, result)
    return result


def collect(out: Path) -> list[SweepResult]:
    return [r for r in map(read_result, sorted(out.glob("*/result.json"))) if r is not None]


def sweep(options: SweepOptions, say=log.info) -> list[SweepResult]:
    from edgedit.bench.harness import BenchSettings
    from edgedit.data.pairs import PairsStore
    from edgedit.design.results import write_reports
    from edgedit.train.distill import METHODS, student_config

    o = options
    for method in o.methods:
        if method not in METHODS:
            raise EdgeditError(f"`methods`: unknown method {method!r}; choose from {', '.join(METHODS)}")
    if "ta" in o.methods and o.ta is None:
        raise EdgeditError("`methods` ta needs `ta` PRESET|CKPT, the teaching assistant shared by the sweep")
    worker, workers = check_shard(o.shard)
    o.settings.check()
    if not 1 <= o.eval_samples <= 100_000:
        raise EdgeditError(f"`eval_samples` must be 1..100000 (got {o.eval_samples})")
    BenchSettings([1], warmup=0, duration_s=o.latency_seconds)  # refuses a bad --latency-seconds before training
    out = Path(o.output)
    manifest = PairsStore(o.pairs).manifest
    base = student_config("DiT-Nano-S/2", manifest)
    plan = [c for b in o.budgets for c in candidates_for(b, base, o.depths, o.heads, o.widths, o.methods)]
    ta = prepare_ta(o, manifest, say) if o.ta is not None and "ta" in o.methods else None
    out.mkdir(parents=True, exist_ok=True)
    for index, candidate in enumerate(plan):
        if index % workers != worker:
            continue
        label = f"[{index + 1}/{len(plan)}] {candidate.name}"
        if finished(out, candidate):
            say(f"{label}: done, skipped")
            continue
        if candidate.method == "mi1" and candidate.config.depth < 2:
            say(f"{label}: mi1 needs at least 2 blocks; skipped")
            continue
        misfit = ta_misfit(candidate.config, read_checkpoint(ta).config) if candidate.method == "ta" else None
        if misfit:
            say(f"{label}: {misfit}; skipped")
            continue
        say(f"{label}: {accounting.count_params(candidate.config):,} params")
        result = run_candidate(candidate, o, ta, say)
        say(f"    FID {result.fid:.1f}, {result.latency.p50_ms:.2f} ms on {result.latency.backend}")
    return write_reports(out, collect(out))


def retime(
    out: str | os.PathLike,
    latency_backend: str = "onnxruntime",
    latency_seconds: float = 2.0,
    rounds: int = 5,
    say=log.info,
) -> list[SweepResult]:
    """Re-measure every finished candidate's latency on this machine, once per architecture.

    For a sweep trained on several machines (--shard) or on a busy one: one latency column, from one
    machine, that the Pareto plot and principles can compare. A shared VM drifts by tens of percent
    over minutes, so the architectures are timed in interleaved rounds (`latency_seconds` each per
    round) and each keeps the median of its rounds' p50s (with the rounds, to show the spread).
    """
    from edgedit.bench.harness import MAX_DURATION_S, MAX_ROUNDS
    from edgedit.design.results import write_reports

    if not 1 <= rounds <= MAX_ROUNDS:  # the arguments before any timing
        raise EdgeditError(f"`rounds` must be 1..{MAX_ROUNDS} (got {rounds})")
    if not (math.isfinite(latency_seconds) and 0 < latency_seconds * rounds <= MAX_DURATION_S):
        raise EdgeditError(
            f"`latency_seconds` must be a positive number of seconds, at most {MAX_DURATION_S} over all `rounds` "
            f"(got {latency_seconds} x {rounds})"
        )
    out = Path(out)
    results = collect(out)
    if not results:
        raise EdgeditError(f"{out}: no finished candidates (*/result.json); run `edgedit design sweep -o {out}` first")
    models = {}  # one per architecture: methods share its latency
    for r in results:
        if r.config not in models:
            folder = out / r.name
            models[r.config] = (r, timing_model(folder / "student.safetensors", latency_backend, folder))
    # Every architecture in one interleaved run: the same slice of each round for each.
    timings = time_models([model for _, model in models.values()], latency_backend, latency_seconds * rounds, rounds)
    timed = dict(zip(models, timings))
    for key, (r, _) in models.items():
        p50s = timed[key].rounds_p50_ms
        say(
            f"{r.depth} blocks x {r.width} / {r.heads} heads: {timed[key].p50_ms:.3f} ms on "
            f"{timed[key].backend} (median of {rounds} interleaved rounds, {min(p50s):.3f}..{max(p50s):.3f})"
        )
    results = [r.model_copy(update={"latency": timed[r.config]}) for r in results]
    for r in results:
        write_result(out, r)
    return write_reports(out, results)


def prepare_ta(o: SweepOptions, manifest: dict, say) -> str:
    """A preset TA is distilled once for the whole sweep (OUT/ta.safetensors); a checkpoint is used as is."""
    from edgedit.train.distill import DistillOptions, distill

    if names_a_file(o.ta):
        return o.ta
    path = Path(o.output) / "ta.safetensors"
    if not path.exists():
        say(f"distilling the sweep's teaching assistant {o.ta} -> {path}")
        distill(
            DistillOptions(
                pairs=o.pairs,
                output=path,
                settings=o.settings,
                student=o.ta,
                method="output",
                resume=artefacts.train_state(path).exists(),
            ),
            say=say,
        )
    return str(path)
