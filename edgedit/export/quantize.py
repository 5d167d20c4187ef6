"""`edgedit quantize`: an FP32 export to an explicit-quantization (Q/DQ) INT8 ONNX for TensorRT.

The recipe TensorRT's explicit quantization wants (TensorRT Developer Guide, "Explicit
Quantization"; the ONNX parser's Q/DQ rules in onnx/onnx-tensorrt docs/operators.md): symmetric
INT8 (every zero point 0), per-output-channel weights, per-tensor activations, Q/DQ on the inputs
of the quantized layers only. By default the layers of `edgedit.contract.quantization` (the block
Linear layers) are quantized and everything else stays in high precision.

NVIDIA ModelOpt's ONNX PTQ is used when `nvidia-modelopt` is importable, ONNX Runtime's
`quantize_static` otherwise. Either way the result is measured against the FP32 model on
held-out inputs with ONNX Runtime (CPU), and refused below a PSNR threshold unless forced.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import io
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedit.contract.deps import require
from edgedit.contract.errors import CheckFailed, EdgeditError
from edgedit.contract.fileio import atomic_output, sha256_file
from edgedit.contract.quantization import is_int8_node
from edgedit.contract.spec import PREFIX, ModelMeta
from edgedit.eval.metrics import psnr_db
from edgedit.export import graph
from edgedit.export.calibration import check_calibration

METHODS = ("max", "entropy", "percentile")
TOOLS = ("auto", "modelopt", "onnxruntime")
QUANTIZABLE_OPS = ("MatMul", "Gemm", "Conv")


@dataclass(frozen=True, kw_only=True)
class QuantizeOptions:
    method: str = "max"  # activation ranges: max, entropy or percentile
    excludes: tuple[str, ...] = ()  # fnmatch patterns over node names, kept in high precision
    recipe_layers: bool = True  # only edgedit's INT8 layers; False: every MatMul/Gemm/Conv with a weight
    min_psnr: float = 30.0  # refuse below this output PSNR (dB) against FP32
    force: bool = False  # write even below min_psnr
    tool: str = "auto"  # modelopt when installed, else onnxruntime

    def check(self) -> None:
        if self.method not in METHODS:
            raise EdgeditError(f"--method must be one of {', '.join(METHODS)} (got {self.method!r})")
        if self.tool not in TOOLS:
            raise EdgeditError(f"--tool must be one of {', '.join(TOOLS)} (got {self.tool!r})")
        if not math.isfinite(self.min_psnr):
            raise EdgeditError(f"--min-psnr must be a finite number of dB (got {self.min_psnr})")


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
    extra: dict[str, Any] = field(default_factory=dict)


def select_nodes(model, excludes: list[str], recipe_layers: bool = True) -> tuple[list[str], list[str]]:
    """(nodes to quantize, candidates kept in high precision): MatMul/Gemm/Conv with a constant
    weight, of edgedit's INT8 layers (unless `recipe_layers` is False), minus `excludes`."""
    constants = {t.name for t in model.graph.initializer}
    candidates = [n.name for n in model.graph.node
                  if n.op_type in QUANTIZABLE_OPS and any(i in constants for i in n.input[1:2])]
    chosen = [n for n in candidates if (is_int8_node(n) or not recipe_layers)
              and not any(fnmatch.fnmatchcase(n, p) for p in excludes)]
    return chosen, [n for n in candidates if n not in chosen]


def check_patterns(model, patterns: list[str]) -> None:
    names = [n.name for n in model.graph.node]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise EdgeditError(f"--exclude {', '.join(unmatched)} matches no node; node names look like "
                           f"'blocks.0.attn.qkv/MatMul' or 'final_layer.linear/MatMul'")


def _batches(data: dict[str, np.ndarray], meta: ModelMeta) -> list[dict[str, np.ndarray]]:
    """Rows grouped into equal batches the model accepts (the exported batch, or its optimum for a
    dynamic one); the last batch is padded, as histogram calibrators need equal shapes."""
    from edgedit.runtime.backends import pad_batch

    size = meta.batch["opt"] if meta.dynamic_batch else meta.batch["max"]
    rows = next(iter(data.values())).shape[0]
    return [pad_batch({k: v[start:start + size] for k, v in data.items()}, size) for start in range(0, rows, size)]


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
    calibrate = {"max": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
                 "percentile": q.CalibrationMethod.Percentile}[method]
    with _quiet():
        calibrator = q.create_calibrator(
            model_path, list(QUANTIZABLE_OPS), augmented_model_path=str(model_path.with_name("augmented.onnx")),
            calibrate_method=calibrate, providers=["CPUExecutionProvider"], extra_options=CALIBRATOR_OPTIONS[method])
        calibrator.collect_data(_Reader(batches))
        ranges = calibrator.compute_data()
    return {name: tuple(np.float32(np.asarray(v).ravel()[0]) for v in ranges[name].range_value) for name in ranges}


def _quantize_onnxruntime(src: Path, dst: Path, data, meta, method: str, nodes: list[str]) -> None:
    q = require("onnxruntime.quantization", hint="pip install onnxruntime")
    batches = _batches(data, meta)
    ranges = activation_ranges(src, batches, method)
    with _quiet():
        q.quantize_static(
            str(src), str(dst), _Reader(batches[:1]), quant_format=q.QuantFormat.QDQ, per_channel=True,
            activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, nodes_to_quantize=nodes,
            calibrate_method=q.CalibrationMethod.MinMax, calibration_providers=["CPUExecutionProvider"],
            extra_options={
                "ActivationSymmetric": True, "WeightSymmetric": True,  # zero points 0: TensorRT rejects others
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


def _quantize_modelopt(src: Path, dst: Path, data, method: str, nodes: list[str]) -> None:
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    if method == "percentile":
        raise EdgeditError("ModelOpt's INT8 calibration offers max and entropy, not percentile; "
                           "use --method max|entropy or --tool onnxruntime")
    with _quiet():
        modelopt_quantize(
            onnx_path=str(src), quantize_mode="int8", calibration_data=data, calibration_method=method,
            calibration_eps=["cpu"], nodes_to_quantize=[f"^{re.escape(n)}$" for n in nodes], output_path=str(dst),
            high_precision_dtype="fp32",  # the same graph types as the ONNX Runtime route
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
                raise CheckFailed(f"{node.name}: zero point {zp.dtype} {zp.ravel()[:4]} is not INT8 0; TensorRT "
                                  "requires symmetric INT8 quantization")
            checked += 1
    if not checked:
        raise CheckFailed("the quantized model has no Q/DQ zero points: nothing was quantized")
    return checked


def quantize_onnx(source: str | os.PathLike, output: str | os.PathLike, calibration: dict[str, np.ndarray],
                  heldout: dict[str, np.ndarray], options: QuantizeOptions = QuantizeOptions()) -> QuantizeReport:
    """Quantize with `calibration` inputs and measure against FP32 on `heldout` inputs (both keyed by
    input name); atomic: nothing is written below the PSNR floor."""
    options.check()
    method, tool = options.method, options.tool
    has_modelopt = importlib.util.find_spec("modelopt") is not None
    if tool == "modelopt" and not has_modelopt:
        raise EdgeditError("--tool modelopt: nvidia-modelopt is not installed; pip install 'nvidia-modelopt[onnx]' "
                           "in a separate environment (it pulls onnxruntime-gpu), or use --tool onnxruntime")
    tool = ("modelopt" if has_modelopt else "onnxruntime") if tool == "auto" else tool

    source = Path(source)
    model = graph.load_onnx(source)
    meta = ModelMeta.from_metadata(graph.metadata(model), str(source))
    if meta.precision != "fp32" or graph.is_qdq(model):
        raise EdgeditError(f"{source}: is a {meta.precision} model; quantize an FP32 export (edgedit export "
                           "--precision fp32)")
    graph.check_opset(graph.default_opset(model), where=str(source))
    check_calibration(calibration, meta, "calibration data")
    check_calibration(heldout, meta, "held-out data")
    user = list(options.excludes)
    check_patterns(model, user)
    nodes, excluded = select_nodes(model, user, options.recipe_layers)
    if not nodes:
        raise EdgeditError("the exclude patterns leave no MatMul/Gemm/Conv layer to quantize")

    output = Path(output)
    with atomic_output(output) as tmp:
        scratch = tmp.with_name("fp32-input.onnx")
        graph.save_onnx(model, scratch)
        if tool == "modelopt":
            _quantize_modelopt(scratch, tmp, calibration, method, nodes)
        else:
            _quantize_onnxruntime(scratch, tmp, calibration, meta, method, nodes)
        quantized = graph.load_onnx(tmp)
        zero_points = check_zero_points(quantized)

        # Accuracy on held-out inputs, INT8 against FP32, both on ONNX Runtime CPU.
        ref, got = (_outputs(path, _batches(heldout, meta)) for path in (scratch, tmp))
        psnr, max_abs = psnr_db(ref, got), float(np.abs(ref - got).max())
        report = QuantizeReport(output, tool, method, nodes, excluded, psnr, max_abs,
                                next(iter(calibration.values())).shape[0], next(iter(heldout.values())).shape[0],
                                zero_points)
        if not psnr >= options.min_psnr and not options.force:
            raise CheckFailed(f"INT8 output PSNR {psnr:.1f} dB against FP32 on {report.heldout_rows} held-out inputs "
                              "is "
                              f"below {options.min_psnr:g} dB (max abs error {max_abs:.3g}); nothing was written. "
                              "Exclude more "
                              "layers (--exclude), try --method entropy|percentile, or pass --force")
        meta.precision = "int8"
        meta.extra.pop("parity", None)  # that was the FP32 export's check; this file's is below
        meta.extra["quantization"] = {
            "tool": tool, "method": method, "quantized_nodes": len(nodes), "excluded_nodes": len(excluded),
            "exclude_patterns": user, "recipe_layers": options.recipe_layers,
            "calibration_rows": report.calibration_rows, "heldout_rows": report.heldout_rows,
            "psnr_db": psnr if np.isfinite(psnr) else None, "max_abs_error": max_abs,
            "source_sha256": sha256_file(source),
        }
        graph.set_metadata(quantized, meta.to_metadata(), replace_prefix=PREFIX)
        graph.save_onnx(quantized, tmp)
        scratch.unlink()
    return report



def _outputs(path: Path, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The first output over all batches, straight from an ONNX Runtime CPU session."""
    ort = require("onnxruntime", hint="pip install onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, feeds)[0] for feeds in batches])
