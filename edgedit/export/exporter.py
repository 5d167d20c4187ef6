"""`edgedit export`: a DiT to a self-describing, validated ONNX file that TensorRT 10.3 builds.

Steps: trace `DeployableDiT` with torch's dynamo exporter at an explicit opset -> name nodes by
module -> fold constants (onnx-graphsurgeon) -> optionally convert to an FP16-typed graph with
LayerNorm, Softmax and the EDM preconditioning kept in FP32 -> check the graph (default-domain
ops only, no Attention op, one LayerNormalization per norm, onnx.checker full check) -> write
atomically with `edgedit.*` metadata -> parity: ONNX Runtime (CPU) against torch on fresh
inputs at the smallest and largest batch. Beyond tolerance nothing is written (exit 1).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedit import __version__
from edgedit.contract import artefacts
from edgedit.contract.deps import require
from edgedit.contract.errors import CheckFailed, EdgeditError
from edgedit.contract.fileio import same_file, verification
from edgedit.contract.onnx_header import read_onnx_graph, weights_sha256
from edgedit.contract.progress import task
from edgedit.contract.schedules import sampler_spec
from edgedit.contract.schema import MAX_BATCH
from edgedit.contract.spec import PREFIX, ModelMeta, io_spec
from edgedit.contract.staging import atomic_output
from edgedit.export import graph
from edgedit.export.precision import fp16_plan

DEFAULT_OPSET = 18  # the dynamo exporter's native opset: no version conversion needed
PRECISIONS = ("fp32", "fp16")
# Parity tolerance on max |onnx - torch| / max |torch|, against the FP32 torch model.
PARITY_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


@dataclass(frozen=True)
class BatchSpec:
    min: int
    opt: int
    max: int

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    @classmethod
    def static(cls, batch: int) -> BatchSpec:
        if not 1 <= batch <= MAX_BATCH:
            raise EdgeditError(f"`batch` must be 1..{MAX_BATCH} (got {batch})")
        return cls(batch, batch, batch)

    @classmethod
    def parse(cls, text: str) -> BatchSpec:
        """'MIN:OPT:MAX', e.g. '1:4:8'."""
        try:
            lo, opt, hi = (int(v) for v in text.split(":"))
        except ValueError:
            raise EdgeditError(f"`dynamic_batch` '{text}' is not MIN:OPT:MAX, e.g. 1:4:8") from None
        if not 1 <= lo <= opt <= hi <= MAX_BATCH or lo == hi:
            raise EdgeditError(f"`dynamic_batch` '{text}' needs 1 <= MIN <= OPT <= MAX <= {MAX_BATCH} and MIN < MAX")
        return cls(lo, opt, hi)


@dataclass
class ExportReport:
    path: Path
    data_path: Path | None
    meta: ModelMeta
    ops: dict[str, int]
    parity: list[dict[str, Any]]
    opset: int


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter logs warnings and prints optimizer notes that are not ours to show."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def trace_to_onnx(module, args: tuple, names_in: list[str], names_out: list[str], batch: BatchSpec, opset: int):
    torch = require("torch", extra="train")
    dynamic_shapes = None
    if batch.dynamic:
        dim = torch.export.Dim("N", min=batch.min, max=batch.max)
        dynamic_shapes = (tuple({0: dim} for _ in args),)  # forward(*inputs): one entry, the varargs tuple
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=opset,
            input_names=names_in,
            output_names=names_out,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
        )
    return program.model_proto


def check_parity(path: Path, module, net, batches: list[int], precision: str) -> list[dict[str, Any]]:
    """ONNX Runtime (CPU) vs the torch module on fresh inputs; raise CheckFailed beyond tolerance."""
    torch = require("torch", extra="train")
    from edgedit.models.deployable import example_inputs
    from edgedit.runtime.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, provider="cpu")
    tolerance = PARITY_TOLERANCE[precision]
    results = []
    with task("export parity: ONNX Runtime against torch", len(batches)) as advance:
        for i, batch in enumerate(batches):
            args = example_inputs(net, batch, seed=1000 + i)  # not the tracing inputs
            with torch.no_grad():
                ref = module(*args).numpy()
            got = backend.run({s.name: a.numpy() for s, a in zip(backend.inputs, args)})[backend.outputs[0].name]
            max_abs = float(np.abs(got - ref).max())
            rel = max_abs / max(float(np.abs(ref).max()), 1e-12)
            results.append({"batch": batch, "max_abs_error": max_abs, "max_rel_error": rel, "tolerance": tolerance})
            if not np.isfinite(got).all() or rel > tolerance:
                raise CheckFailed(
                    f"export parity failed at batch {batch}: ONNX Runtime differs from torch by "
                    f"{max_abs:.3g} "
                    f"(relative {rel:.3g} > tolerance {tolerance:g}, {precision}); nothing was written"
                )
            advance(1)
    return results


def export_onnx(
    net,
    output: str | os.PathLike,
    source: dict[str, Any],
    batch: BatchSpec,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    external_data_bytes: int = graph.EXTERNAL_DATA_BYTES,
) -> ExportReport:
    """Export `net` (a DiT in eval mode) to `output`. See the module docstring."""
    require("onnx", extra="train")
    require("onnxscript", extra="train")
    from edgedit.models.deployable import DeployableDiT, example_inputs

    graph.check_opset(opset)
    if precision not in PRECISIONS:
        raise EdgeditError(f"`precision` must be one of {', '.join(PRECISIONS)} (INT8 comes from `edgedit quantize`)")
    cfg = net.config
    module = DeployableDiT(net.eval()).eval()
    inputs, outputs = io_spec(cfg)
    # A dynamic batch is traced from an example of batch >= 2 (batch 1 would be specialised away).
    trace_batch = max(2, batch.opt) if batch.dynamic else batch.opt
    proto = trace_to_onnx(
        module, example_inputs(net, trace_batch), [s.name for s in inputs], [s.name for s in outputs], batch, opset
    )
    graph.name_nodes_by_module(proto)
    proto = graph.fold_constants(proto)
    sampler = sampler_spec(cfg, net.noise)  # the checkpoint's noise scheme: its seeds keep their images
    meta = ModelMeta(cfg, inputs, outputs, sampler, "fp32", batch.to_dict(), source, __version__)
    if precision == "fp16":
        # FP32 only where measurements say FP16 overflows or loses accuracy (LayerNorm, softmax, ...: the
        # same decision `edgedit quantize` makes for its FP16-typed INT8 graphs).
        plan, _ = fp16_plan(proto, meta)
        proto = graph.fold_constants(graph.to_fp16(proto, plan.kept_fp32))  # folds the weights' casts, toposorts
        meta.precision, meta.extra["plan"] = "fp16", plan.to_dict()
    graph.check_tensorrt_friendly(proto, cfg.depth)
    graph.set_metadata(proto, meta.to_metadata(), replace_prefix=PREFIX)
    proto.producer_name, proto.producer_version = "edgedit", __version__
    proto.doc_string = f"edgedit {cfg.kind}; inputs {', '.join(s.name for s in inputs)}"

    onnx = require("onnx", extra="train")
    output = Path(output)
    with atomic_output(output, artefacts.onnx_data(output)) as tmp:
        data = graph.save_onnx(proto, tmp, external_data_bytes)
        onnx.checker.check_model(str(tmp), full_check=True)
        batches = sorted({batch.min, batch.max})
        with verification(False):  # the file being written: its content hash is recorded just below
            parity = check_parity(tmp, module, net, batches, precision)
        header = graph.load_onnx(tmp, load_external_data=False)  # record the parity, weights untouched
        meta.extra["parity"] = parity
        meta.extra["weights_sha256"] = weights_sha256(read_onnx_graph(tmp))  # what every reader verifies
        graph.set_metadata(header, meta.to_metadata(), replace_prefix=PREFIX)
        onnx.save_model(header, str(tmp))
    return ExportReport(
        output, output.with_name(data.name) if data else None, meta, graph.op_histogram(proto), parity, opset
    )


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    batch: int | None = None  # static batch (default 1)
    dynamic_batch: str | None = None  # "MIN:OPT:MAX"
    precision: str = "fp32"
    opset: int = DEFAULT_OPSET
    overrides: dict[str, Any] = field(default_factory=dict)  # preset overrides

    def batch_spec(self) -> BatchSpec:
        if self.batch is not None and self.dynamic_batch is not None:
            raise EdgeditError("`batch` and `dynamic_batch` exclude each other: choose a static or a dynamic batch")
        return BatchSpec.parse(self.dynamic_batch) if self.dynamic_batch else BatchSpec.static(self.batch or 1)


def export_model(model: str, output: str | os.PathLike | None, options: ExportOptions) -> ExportReport:
    """`edgedit export`: a checkpoint or preset to a validated ONNX file."""
    from edgedit.models.loading import load_model_or_preset

    spec = options.batch_spec()
    graph.check_opset(options.opset)
    output = Path(output) if output else artefacts.default_export(model, options.precision)
    if same_file(Path(model), output):
        raise EdgeditError(f"{output}: is the input model; write the ONNX file elsewhere (`output` NAME.onnx)")
    net, source = load_model_or_preset(model, **options.overrides)
    return export_onnx(net, output, source, spec, options.precision, options.opset)
