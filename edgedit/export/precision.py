"""Precision plans chosen from measurements: which layer classes of a DiT run in INT8, and which
FP32 candidates an FP16-typed graph must keep in FP32 (`edgedit.contract.quantization`).

Everything is measured on ONNX Runtime (CPU) against the FP32 model's outputs on held-out inputs
(output PSNR, peak = the FP32 output's range), with the activation ranges calibrated once:

1. FP32 candidates (LayerNorm, softmax, the timestep embedding, the final layer, the nodes outside
   the DiT), as ModelOpt's AutoCast decides (NVIDIA TensorRT Model Optimizer, `modelopt.onnx.autocast`):
   a class stays FP32 when its activations exceed FP16_DATA_MAX (AutoCast's default `data_max`), or
   when running it in FP16 brings the output below FP16_PSNR_FLOOR against FP32 (AutoCast looks at
   magnitudes only; this also catches a class that loses accuracy without overflowing).
2. INT8 classes: each class quantized alone gives its "error alone"; then, largest MACs first, a
   class joins the INT8 set when the set with it still meets the PSNR budget. The result is the set
   with the most INT8 MACs that a greedy search finds within the budget.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgedit.contract import artefacts
from edgedit.contract.config import DiTConfig
from edgedit.contract.deps import require
from edgedit.contract.progress import task
from edgedit.contract.quantization import (
    FP32_CLASSES,
    INT8_CLASSES,
    RECIPE_INT8,
    LayerChoice,
    PrecisionPlan,
    fp32_class,
)
from edgedit.eval.metrics import psnr_db
from edgedit.export import graph

FP16_DATA_MAX = 512.0  # ModelOpt AutoCast's data_max: activations above it keep their node in FP32
# An FP32 candidate runs in FP16 when the output then stays above this PSNR against FP32: 60 dB is an
# RMS error of 1e-3 of the output's range, a quarter of one grey level of an 8-bit image. FP16 itself
# rounds at 2^-11 = 4.9e-4 relative, so whole-graph FP16 lands near 66-76 dB on transformer outputs.
FP16_PSNR_FLOOR = 60.0


def batches_of(data: dict[str, np.ndarray], meta) -> list[dict[str, np.ndarray]]:
    """Rows grouped into equal batches the model accepts (the exported batch, or its optimum for a
    dynamic one); the last batch is padded, as histogram calibrators need equal shapes."""
    from edgedit.runtime.backends import pad_batch

    size = meta.batch["opt"] if meta.dynamic_batch else meta.batch["max"]
    rows = next(iter(data.values())).shape[0]
    return [pad_batch({k: v[start : start + size] for k, v in data.items()}, size) for start in range(0, rows, size)]


def fp16_plan(
    model, meta, say: Callable[[str], None] = lambda message: None, samples: int = 16
) -> tuple[PrecisionPlan, list[LayerChoice]]:
    """The plan of an FP16 export: the FP32 candidates measured (choose_fp32) on inputs recorded from
    `samples` calibration seeds and half as many held-out ones, on the FP32 graph `model` (`meta` its
    FP32 metadata)."""
    from edgedit.contract.fileio import verification
    from edgedit.contract.spec import PREFIX
    from edgedit.export.calib_data import CALIBRATION_SEED, HELDOUT_SEED, record_inputs
    from edgedit.runtime.onnxruntime import OnnxRuntimeBackend

    onnx = require("onnx", extra="train")
    with tempfile.TemporaryDirectory(prefix="edgedit-fp16-") as folder:
        source = Path(folder) / "fp32.onnx"
        described = onnx.ModelProto()
        described.CopyFrom(model)
        graph.set_metadata(described, meta.to_metadata(), replace_prefix=PREFIX)
        graph.save_onnx(described, source)
        with verification(False):  # a scratch copy this process just wrote, never hashed
            backend = OnnxRuntimeBackend(source, "cpu")
        recorded = [
            record_inputs(backend, n, seed)
            for n, seed in ((samples, CALIBRATION_SEED), (max(1, samples // 2), HELDOUT_SEED))
        ]
        calibration, heldout = (batches_of(data, meta) for data in recorded)
        trial = Trial(source, described, calibration, heldout, {}, Path(folder), len(next(iter(recorded[1].values()))))
        kept, rows = choose_fp32(trial, magnitudes(described, calibration), say)
    return PrecisionPlan(int8=(), high="fp16", fp32=kept), rows


def class_macs(cfg: DiTConfig) -> dict[str, int]:
    """MACs per image of each INT8 layer class (the kernel model's layers)."""
    from edgedit.cost.kernels import dit_kernels

    macs = dict.fromkeys(INT8_CLASSES, 0)
    for k in dit_kernels(cfg):
        if k.layer:
            macs[k.layer] += k.flops * k.count // 2
    return macs


class Trial:
    """One FP32 ONNX model, its calibrated activation ranges and its held-out reference outputs:
    `psnr(int8_nodes, plan)` builds the candidate graph and measures it."""

    def __init__(
        self,
        source: Path,
        model,
        calibration: list[dict[str, np.ndarray]],
        heldout: list[dict[str, np.ndarray]],
        ranges: dict[str, tuple],
        workdir: Path,
        rows: int,
    ):
        """`heldout` in batches the model accepts, of which the first `rows` rows are real (padding after)."""
        self.source, self.model, self.calibration, self.heldout = source, model, calibration, heldout
        self.ranges, self.workdir, self.rows = ranges, workdir, rows
        self.reference = outputs(source, heldout)[:rows]
        self.trials = 0

    def build(self, nodes: list[str], plan: PrecisionPlan, path: Path) -> Path:
        """The Q/DQ graph of `nodes` (none: the plain graph), typed as `plan` says, at `path`."""
        from edgedit.export.quantize import quantize_nodes

        if nodes:
            quantize_nodes(self.source, path, self.calibration, self.ranges, nodes)
            typed = graph.load_onnx(path)
        else:
            typed = self.model
        if plan.high == "fp16":
            typed = graph.to_fp16(typed, plan.kept_fp32, plan.io)
        graph.save_onnx(typed, path)
        return path

    def psnr(self, nodes: list[str], plan: PrecisionPlan) -> float:
        self.trials += 1
        path = self.build(nodes, plan, self.workdir / f"trial-{self.trials}{artefacts.ONNX}")
        try:
            return psnr_db(self.reference, outputs(path, self.heldout)[: self.rows])
        finally:
            path.unlink(missing_ok=True)


def outputs(path: Path, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The first output over all batches, in float64, from an ONNX Runtime CPU session."""
    ort = require("onnxruntime", hint="pip install onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    half = {i.name for i in session.get_inputs() if i.type == "tensor(float16)"}  # an --io fp16 graph
    return np.concatenate(
        [
            session.run(None, {k: v.astype(np.float16) if k in half else v for k, v in feeds.items()})[0].astype(
                np.float64
            )
            for feeds in batches
        ]
    )


def magnitudes(model, batches: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """max |x| of every float tensor of the FP32 graph over `batches` (every intermediate exposed)."""
    onnx = require("onnx", extra="train")
    ort = require("onnxruntime", hint="pip install onnxruntime")
    inferred = onnx.shape_inference.infer_shapes(model)
    exposed = [v for v in inferred.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    probe = onnx.ModelProto()
    probe.CopyFrom(inferred)
    probe.graph.output.extend(exposed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.onnx"
        graph.save_onnx(probe, path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        peaks = dict.fromkeys(names, 0.0)
        for feeds in batches:
            for name, value in zip(names, session.run(names, feeds)):
                if np.issubdtype(value.dtype, np.floating) and value.size:
                    peaks[name] = max(peaks[name], float(np.abs(value).max()))
    for name, value in batches[0].items():
        if np.issubdtype(value.dtype, np.floating):
            peaks[name] = max(float(np.abs(b[name]).max()) for b in batches)
    return peaks


def fp32_candidates(model) -> dict[str, list]:
    """The FP32 candidate classes present in the graph, with their nodes."""
    found: dict[str, list] = {}
    for node in model.graph.node:
        name = fp32_class(node.name, node.op_type)
        if name is not None and node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            found.setdefault(name, []).append(node)
    return {name: found[name] for name in FP32_CLASSES if name in found}


def choose_fp32(
    trial: Trial, peaks: dict[str, float], say: Callable[[str], None]
) -> tuple[tuple[str, ...], list[LayerChoice]]:
    """(the classes kept FP32, their table rows) for an FP16-typed graph."""
    present = fp32_candidates(trial.model)
    rows, kept = [], []
    with task("FP16 sensitivity: each FP32 candidate", len(present)) as advance:
        psnrs = {}
        for name in present:
            psnrs[name] = trial.psnr(
                [], PrecisionPlan(int8=(), high="fp16", fp32=tuple(c for c in present if c != name))
            )
            advance(1)
    for name, nodes in present.items():
        peak = max((peaks.get(t, 0.0) for n in nodes for t in [*n.input, *n.output]), default=0.0)
        psnr = psnrs[name]
        if peak > FP16_DATA_MAX:
            decision, why = "fp32", f"activations up to {peak:.3g} > {FP16_DATA_MAX:g}"
        elif not psnr >= FP16_PSNR_FLOOR:
            decision, why = "fp32", f"in FP16 the output falls to {psnr:.1f} dB < {FP16_PSNR_FLOOR:g} dB"
        else:
            decision, why = "fp16", f"peak {peak:.3g} <= {FP16_DATA_MAX:g}, output {psnr:.1f} dB in FP16"
        say(f"FP32 candidate {name}: {decision} ({why})")
        rows.append(LayerChoice(name, 0, psnr, decision, why, {"peak": peak, "nodes": len(nodes)}))
        if decision == "fp32":
            kept.append(name)
    # Together: if the FP16 classes bring the output below the floor, keep the costliest back in FP32.
    by_cost = sorted((r for r in rows if r.decision == "fp16"), key=lambda r: r.psnr_db)
    while by_cost and not trial.psnr([], PrecisionPlan(int8=(), high="fp16", fp32=tuple(kept))) >= FP16_PSNR_FLOOR:
        back = by_cost.pop(0)
        kept.append(back.name)
        rows[rows.index(back)] = replace(back, decision="fp32", why=back.why + "; kept: together they fall below")
    return tuple(c for c in present if c in kept), rows


@dataclass
class Int8Search:
    """The INT8 classes the graph has, with their nodes (user excludes applied) and MACs."""

    nodes: dict[str, list[str]]
    macs: dict[str, int]


def choose_int8(
    trial: Trial,
    search: Int8Search,
    plan: PrecisionPlan,
    budget_db: float,
    measured: bool,
    say: Callable[[str], None],
    cost_ms: Callable[[PrecisionPlan], float] | None = None,
    alone: dict[str, float] | None = None,
) -> tuple[tuple[str, ...], list[LayerChoice]]:
    """(INT8 classes, table rows). `measured`: the greedy search, largest MACs first, where a class joins
    when the set with it meets the budget and, by `cost_ms` (the device estimate), is not slower than
    without it (an INT8 class that adds kernels, such as a standalone quantize or an unfused attention,
    buys no time; when none does, the budget alone decides, the file being INT8 as asked); else the
    recipe's classes. Every class is measured alone for the table (`alone`: measured already)."""
    if alone is None:
        alone = {}
        with task("INT8 sensitivity: each class alone", len(search.nodes)) as advance:
            for name, nodes in search.nodes.items():
                alone[name] = trial.psnr(nodes, replace(plan, int8=(name,)))
                say(f"INT8 {name} alone: {alone[name]:.1f} dB")
                advance(1)
    chosen: list[str] = []
    rows = {}
    order = sorted(search.nodes, key=lambda c: (-search.macs.get(c, 0), -alone[c]))
    for name in order:
        if not measured:
            rows[name] = ("int8", "the recipe") if name in RECIPE_INT8 else ("high", "not in the recipe")
            chosen += [name] if name in RECIPE_INT8 else []
            continue
        if not alone[name] >= budget_db:
            rows[name] = ("high", f"alone {alone[name]:.1f} dB < {budget_db:g} dB")
        elif cost_ms is not None and (
            cost_ms(replace(plan, int8=(*chosen, name))) > cost_ms(replace(plan, int8=tuple(chosen)))
        ):
            with_it, without = cost_ms(replace(plan, int8=(*chosen, name))), cost_ms(replace(plan, int8=tuple(chosen)))
            rows[name] = ("high", f"slower by estimate: {with_it:.3f} vs {without:.3f} ms")
        else:
            together = trial.psnr(
                [n for c in [*chosen, name] for n in search.nodes[c]], replace(plan, int8=(*chosen, name))
            )
            if together >= budget_db:
                chosen.append(name)
                rows[name] = ("int8", f"with the INT8 classes above: {together:.1f} dB")
            else:
                rows[name] = ("high", f"with the INT8 classes above: {together:.1f} dB < {budget_db:g} dB")
        say(f"INT8 {name}: {rows[name][0]} ({rows[name][1]})")
    if measured and not chosen and cost_ms is not None and any(a >= budget_db for a in alone.values()):
        say("no INT8 class makes this model faster by estimate: choosing by the budget alone")
        return choose_int8(trial, search, plan, budget_db, measured, say, None, alone)
    table = [LayerChoice(name, search.macs.get(name, 0), alone[name], *rows[name]) for name in order]
    return tuple(c for c in INT8_CLASSES if c in chosen), table
