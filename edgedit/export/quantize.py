"""`edgedit quantize`: an FP32 export to an explicit-quantization (Q/DQ) INT8 ONNX for TensorRT.

The recipe TensorRT's explicit quantization wants (TensorRT Developer Guide, "Explicit
Quantization"; the ONNX parser's Q/DQ rules in onnx/onnx-tensorrt docs/operators.md): symmetric
INT8 (every zero point 0), per-output-channel weights, per-tensor activations, Q/DQ on the inputs
of the quantized layers only. Which layer classes are INT8 is a precision plan
(`edgedit.contract.quantization`): measured (`plan="auto"`, `edgedit.export.precision`) or the
recipe's block Linear layers. Everything else is typed FP16 (opset 19, FP16 scales), except the
FP32 candidates the measurements keep in FP32, so that a strongly typed TensorRT build runs it in
FP16; `high="fp32"` keeps the FP32-typed form for comparison.

NVIDIA ModelOpt's ONNX PTQ makes the final file when `nvidia-modelopt` is importable (the plan is
measured with ONNX Runtime's quantizer either way), ONNX Runtime's `quantize_static` otherwise.
The result is measured against the FP32 model on held-out inputs with ONNX Runtime (CPU), and
refused below the PSNR budget unless forced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib.util
import io
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgedit.contract import artefacts
from edgedit.contract.deps import require
from edgedit.contract.errors import CheckFailed, EdgeditError
from edgedit.contract.fileio import sha256_file
from edgedit.contract.onnx_header import read_onnx_graph, weights_sha256
from edgedit.contract.quantization import (
    HIGH_PRECISIONS,
    INT8_CLASSES,
    MIN_PSNR_DB,
    RECIPE_INT8,
    PrecisionPlan,
    int8_class,
)
from edgedit.contract.spec import PREFIX, ModelMeta, io_spec
from edgedit.contract.staging import atomic_output, write_text_atomic
from edgedit.eval.metrics import psnr_db
from edgedit.export import graph
from edgedit.export.calib_data import check_calibration

log = logging.getLogger("edgedit")

METHODS = ("max", "entropy", "percentile")
TOOLS = ("auto", "modelopt", "onnxruntime")
PLANS = ("auto", "recipe")  # measured, or the recipe's INT8 classes
QUANTIZABLE_OPS = ("MatMul", "Gemm", "Conv")


@dataclass(frozen=True, kw_only=True)
class QuantizeOptions:
    method: str = "max"  # activation ranges: max, entropy or percentile
    excludes: tuple[str, ...] = ()  # fnmatch patterns over node names, kept in high precision
    plan: str = "auto"  # INT8 classes: "auto" (measured) or "recipe" (the block Linear layers)
    high: str = "fp16"  # the type of everything that is not INT8: fp16 (typed per the measurements) or fp32
    io: str = "fp32"  # the graph's input/output type
    min_psnr: float = MIN_PSNR_DB  # the quality budget: output PSNR (dB) against FP32 on held-out inputs
    force: bool = False  # write even below min_psnr
    tool: str = "auto"  # modelopt when installed, else onnxruntime

    def check(self) -> None:
        for name, value, allowed in (
            ("method", self.method, METHODS),
            ("tool", self.tool, TOOLS),
            ("plan", self.plan, PLANS),
            ("high", self.high, HIGH_PRECISIONS),
            ("io", self.io, HIGH_PRECISIONS),
        ):
            if value not in allowed:
                raise EdgeditError(f"`{name}` must be one of {', '.join(allowed)} (got {value!r})")
        if not math.isfinite(self.min_psnr):
            raise EdgeditError(f"`min_psnr` must be a finite number of dB (got {self.min_psnr})")


@dataclass
class QuantizeReport:
    path: Path
    tool: str
    method: str
    quantized: list[str]
    excluded: list[str]
    psnr_db: float
    max_abs_error: float
    calibration_rows: int
    heldout_rows: int
    zero_points: int  # how many Q/DQ zero points were checked (all are 0)
    plan: PrecisionPlan = field(default_factory=PrecisionPlan)
    int8_rows: list = field(default_factory=list)  # LayerChoice per INT8 class
    fp32_rows: list = field(default_factory=list)  # LayerChoice per FP32 candidate
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What `--json` prints and NAME.int8.precision.json holds."""

        def rows(choices) -> list[dict[str, Any]]:  # an infinite PSNR (identical outputs) is written as None
            return [
                {
                    k: None if isinstance(v, float) and not math.isfinite(v) else v
                    for k, v in dataclasses.asdict(c).items()
                }
                for c in choices
            ]

        return {
            "path": str(self.path),
            "tool": self.tool,
            "method": self.method,
            "plan": self.plan.to_dict(),
            "int8_classes": rows(self.int8_rows),
            "fp32_candidates": rows(self.fp32_rows),
            "quantized": self.quantized,
            "excluded": self.excluded,
            "psnr_db": self.psnr_db if math.isfinite(self.psnr_db) else None,
            "max_abs_error": self.max_abs_error,
            "calibration_rows": self.calibration_rows,
            "heldout_rows": self.heldout_rows,
            "zero_points_checked": self.zero_points,
        }


def candidate_nodes(model, excludes: list[str]) -> dict[str, list[str]]:
    """INT8 class -> its MatMul/Gemm/Conv nodes: with a constant weight, or both operands activations
    for the attention products; minus `excludes`."""
    constants = {t.name for t in model.graph.initializer}
    found: dict[str, list[str]] = {}
    for n in model.graph.node:
        name = int8_class(n.name) if n.op_type in QUANTIZABLE_OPS else None
        if name is None or any(fnmatch.fnmatchcase(n.name, p) for p in excludes):
            continue
        if (name == "attention") != any(i in constants for i in n.input[1:2]):
            found.setdefault(name, []).append(n.name)
    return {c: found[c] for c in INT8_CLASSES if c in found}


def check_patterns(model, patterns: list[str]) -> None:
    names = [n.name for n in model.graph.node]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise EdgeditError(
            f"`excludes` {', '.join(unmatched)} matches no node; node names look like "
            f"'blocks.0.attn.qkv/MatMul' or 'final_layer.linear/MatMul'"
        )


# Histogram settings of TensorRT's entropy calibrator (2048 bins searched down to 128). ONNX
# Runtime's quantize_static keeps 128/128, with which its entropy search degenerates into max.
CALIBRATOR_OPTIONS = {
    "max": {"symmetric": True},
    "entropy": {"symmetric": True, "num_bins": 2048, "num_quantized_bins": 128},
    "percentile": {"symmetric": True, "num_bins": 2048, "percentile": 99.999},
}


def activation_ranges(model_path: Path, batches: list[dict[str, np.ndarray]], method: str) -> dict[str, tuple]:
    """(low, high) of every activation a MatMul/Gemm/Conv reads, from ONNX Runtime's calibrators."""
    q = require("onnxruntime.quantization", hint="pip install onnxruntime")
    calibrate = {
        "max": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }[method]
    with _quiet():
        calibrator = q.create_calibrator(
            model_path,
            list(QUANTIZABLE_OPS),
            augmented_model_path=str(model_path.with_name("augmented.onnx")),
            calibrate_method=calibrate,
            providers=["CPUExecutionProvider"],
            extra_options=CALIBRATOR_OPTIONS[method],
        )
        calibrator.collect_data(_Reader(batches))
        ranges = calibrator.compute_data()
    return {name: tuple(np.float32(np.asarray(v).ravel()[0]) for v in ranges[name].range_value) for name in ranges}


def quantize_nodes(
    src: Path, dst: Path, batches: list[dict[str, np.ndarray]], ranges: dict[str, tuple], nodes: list[str]
) -> None:
    """ONNX Runtime's QDQ quantizer on `nodes`, with activation ranges calibrated beforehand."""
    q = require("onnxruntime.quantization", hint="pip install onnxruntime")
    with _quiet():
        q.quantize_static(
            str(src),
            str(dst),
            _Reader(batches[:1]),
            quant_format=q.QuantFormat.QDQ,
            per_channel=True,
            activation_type=q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8,
            nodes_to_quantize=nodes,
            calibrate_method=q.CalibrationMethod.MinMax,
            calibration_providers=["CPUExecutionProvider"],
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,  # zero points 0: TensorRT rejects others
                "QuantizeBias": False,  # biases stay float: TensorRT fuses them into the INT8 layer
                "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # MatMul weights are (in, out): channel axis 1
                "OpTypesToExcludeOutputQuantization": list(QUANTIZABLE_OPS),  # Q/DQ on layer inputs only
                # The ranges calibrated above, whatever the method (quantize_static's own pass is a formality).
                "TensorQuantOverrides": {name: [{"rmin": lo, "rmax": hi}] for name, (lo, hi) in ranges.items()},
            },
        )


class _Reader:
    """An onnxruntime CalibrationDataReader over prepared batches."""

    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self.batches = batches
        self.items = iter(batches)

    def get_next(self):
        return next(self.items, None)

    def rewind(self):
        self.items = iter(self.batches)


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's quantizer prints progress and advice on stdout and the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _quantize_modelopt(src: Path, dst: Path, data, method: str, nodes: list[str], plan: PrecisionPlan) -> None:
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    from edgedit.contract.quantization import FP32_CLASSES

    if method == "percentile":
        raise EdgeditError(
            "ModelOpt's INT8 calibration offers max and entropy, not percentile; "
            "use `method` max|entropy or `tool` onnxruntime"
        )
    with _quiet():
        modelopt_quantize(
            onnx_path=str(src),
            quantize_mode="int8",
            calibration_data=data,
            calibration_method=method,
            calibration_eps=["cpu"],
            nodes_to_quantize=[f"^{re.escape(n)}$" for n in nodes],
            output_path=str(dst),
            high_precision_dtype=plan.high,  # ModelOpt types the rest itself (its default is fp16)
            op_types_to_exclude_fp16=[op for c in plan.kept_fp32 for op in FP32_CLASSES[c][0]],
            direct_io_types=plan.io == "fp16",
            log_level="WARNING",
        )


def check_zero_points(model) -> int:
    """Every Q/DQ zero point must be INT8 zero (TensorRT's explicit quantization rule)."""
    numpy_helper = require("onnx.numpy_helper", extra="train")
    constants = {t.name: t for t in model.graph.initializer}
    checked = 0
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = numpy_helper.to_array(constants[node.input[2]])
            if zp.dtype != np.int8 or np.any(zp != 0):
                raise CheckFailed(
                    f"{node.name}: zero point {zp.dtype} {zp.ravel()[:4]} is not INT8 0; TensorRT "
                    "requires symmetric INT8 quantization"
                )
            checked += 1
    if not checked:
        raise CheckFailed("the quantized model has no Q/DQ zero points: nothing was quantized")
    return checked


def quantize_onnx(
    source: str | os.PathLike,
    output: str | os.PathLike,
    calibration: dict[str, np.ndarray],
    heldout: dict[str, np.ndarray],
    options: QuantizeOptions = QuantizeOptions(),
    say=lambda message: None,
) -> QuantizeReport:
    """Quantize with `calibration` inputs and measure against FP32 on `heldout` inputs (both keyed by
    input name); the plan is chosen first (`options.plan`). Atomic: nothing is written below the budget."""
    from edgedit.cost.fit import estimate
    from edgedit.export.precision import (
        Int8Search,
        Trial,
        batches_of,
        choose_fp32,
        choose_int8,
        class_macs,
        magnitudes,
        outputs,
    )

    options.check()
    method, tool = options.method, options.tool
    has_modelopt = importlib.util.find_spec("modelopt") is not None
    if tool == "modelopt" and not has_modelopt:
        raise EdgeditError(
            "`tool` modelopt: nvidia-modelopt is not installed; pip install 'nvidia-modelopt[onnx]' "
            "in a separate environment (it pulls onnxruntime-gpu), or use `tool` onnxruntime"
        )
    tool = ("modelopt" if has_modelopt else "onnxruntime") if tool == "auto" else tool

    source = Path(source)
    model = graph.load_onnx(source)
    meta = ModelMeta.from_metadata(graph.metadata(model), str(source))
    if meta.precision != "fp32" or graph.is_qdq(model):
        raise EdgeditError(
            f"{source}: is a {meta.precision} model; quantize an FP32 export (`edgedit export --precision fp32`)"
        )
    graph.check_opset(graph.default_opset(model), where=str(source))
    check_calibration(calibration, meta, "calibration data")
    check_calibration(heldout, meta, "held-out data")
    user = list(options.excludes)
    check_patterns(model, user)
    found = candidate_nodes(model, user)
    search = Int8Search(
        found if options.plan == "auto" else {c: n for c, n in found.items() if c in RECIPE_INT8},
        class_macs(meta.config),
    )
    if not search.nodes:
        raise EdgeditError("the exclude patterns leave no MatMul/Gemm/Conv layer to quantize")

    output = Path(output)
    with atomic_output(output) as tmp:
        scratch = tmp.with_name("fp32-input.onnx")
        graph.save_onnx(model, scratch)
        calib_batches, heldout_batches = batches_of(calibration, meta), batches_of(heldout, meta)
        say(f"calibrating activation ranges ({method}) on {len(calib_batches)} batches")
        ranges = activation_ranges(scratch, calib_batches, method)
        trial = Trial(
            scratch, model, calib_batches, heldout_batches, ranges, tmp.parent, next(iter(heldout.values())).shape[0]
        )
        plan = PrecisionPlan(int8=(), high=options.high, fp32=(), io=options.io)
        fp32_rows = []
        if options.high == "fp16":
            kept, fp32_rows = choose_fp32(trial, magnitudes(model, calib_batches), say)
            plan = replace(plan, fp32=kept)
        classes, int8_rows = choose_int8(
            trial,
            search,
            plan,
            options.min_psnr,
            options.plan == "auto",
            say,
            lambda p: estimate(meta.config, "orin-nano", "int8", plan=p).ms,
        )
        if not classes and not options.force:
            best = max(int8_rows, key=lambda r: r.psnr_db)
            raise CheckFailed(
                f"no INT8 layer class meets the {options.min_psnr:g} dB budget even alone (the best, "
                f"{best.name}, gives {best.psnr_db:.1f} dB); lower `min_psnr`, pass `force` for the "
                "recipe's classes, or keep this model in FP16"
            )
        classes = classes or tuple(c for c in RECIPE_INT8 if c in search.nodes)  # forced
        plan = replace(plan, int8=classes)
        nodes = [n for c in classes for n in search.nodes[c]]
        excluded = [n for c, ns in found.items() for n in ns if n not in nodes]

        if tool == "modelopt":
            _quantize_modelopt(scratch, tmp, calibration, method, nodes, plan)
        else:
            trial.build(nodes, plan, tmp)
        quantized = graph.load_onnx(tmp)
        zero_points = check_zero_points(quantized)

        # Accuracy on held-out inputs, INT8 against FP32, both on ONNX Runtime CPU.
        rows = next(iter(heldout.values())).shape[0]
        ref, got = (outputs(path, heldout_batches)[:rows] for path in (scratch, tmp))
        psnr, max_abs = psnr_db(ref, got), float(np.abs(ref - got).max())
        report = QuantizeReport(
            output,
            tool,
            method,
            nodes,
            excluded,
            psnr,
            max_abs,
            next(iter(calibration.values())).shape[0],
            next(iter(heldout.values())).shape[0],
            zero_points,
            plan,
            int8_rows,
            fp32_rows,
        )
        if not psnr >= options.min_psnr and not options.force:
            raise CheckFailed(
                f"INT8 output PSNR {psnr:.1f} dB against FP32 on {report.heldout_rows} held-out inputs "
                f"is below {options.min_psnr:g} dB (max abs error {max_abs:.3g}); nothing was written. "
                "Exclude more layers (`excludes`), try `plan` auto or `method` entropy|percentile, or "
                "pass `force`"
            )
        if not psnr >= options.min_psnr:
            log.warning(
                "INT8 output PSNR %.1f dB is below the %g dB budget: written because `force` was given",
                psnr,
                options.min_psnr,
            )
        meta.precision = "int8"
        if plan.io == "fp16":
            meta.inputs, meta.outputs = io_spec(meta.config, float_dtype="float16")
        meta.extra.pop("parity", None)  # that was the FP32 export's check; this file's is below
        meta.extra.pop("weights_sha256", None)  # the source's; this file's is computed once it is written
        meta.extra["plan"] = plan.to_dict()
        meta.extra["quantization"] = {
            "tool": tool,
            "method": method,
            "quantized_nodes": len(nodes),
            "excluded_nodes": len(excluded),
            "exclude_patterns": user,
            "plan_search": options.plan,
            "budget_psnr_db": options.min_psnr,
            "calibration_rows": report.calibration_rows,
            "heldout_rows": report.heldout_rows,
            "psnr_db": psnr if np.isfinite(psnr) else None,
            "max_abs_error": max_abs,
            "source_sha256": sha256_file(source),
        }
        graph.set_metadata(quantized, meta.to_metadata(), replace_prefix=PREFIX)
        graph.save_onnx(quantized, tmp)
        meta.extra["weights_sha256"] = weights_sha256(read_onnx_graph(tmp))  # what every reader verifies
        graph.set_metadata(quantized, meta.to_metadata(), replace_prefix=PREFIX)
        graph.save_onnx(quantized, tmp)
        scratch.unlink()
    write_text_atomic(artefacts.precision_plan(output), json.dumps(report.to_dict(), indent=1, allow_nan=False) + "\n")
    return report
