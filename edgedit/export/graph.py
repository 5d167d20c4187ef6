"""ONNX graph utilities shared by export, quantize and info (onnx + onnx-graphsurgeon; no torch)."""

from __future__ import annotations

import ast
import collections
import contextlib
import io
import os
import warnings
from pathlib import Path

from edgedit.contract import artefacts
from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import regular_file

# TensorRT 10.3 (JetPack 6.1/6.2) parses ONNX opsets up to 20; LayerNormalization needs 17.
SUPPORTED_OPSETS = range(17, 21)
# Protobuf cannot serialize a message over 2 GiB: larger models keep their weights in NAME.onnx.data.
EXTERNAL_DATA_BYTES = 2**31 - 2**26


def check_opset(opset: int, where: str = "`opset`") -> None:
    if opset not in SUPPORTED_OPSETS:
        raise EdgeditError(
            f"{where}: opset {opset} is outside {SUPPORTED_OPSETS.start}-{SUPPORTED_OPSETS.stop - 1}: TensorRT 10.3 "
            f"(JetPack 6) parses up to opset {SUPPORTED_OPSETS.stop - 1} and LayerNormalization needs 17"
        )


def default_opset(model) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def load_onnx(path: str | os.PathLike, load_external_data: bool = True):
    """onnx.load with one-line errors for missing, truncated or non-ONNX files."""
    onnx = require("onnx", extra="train")
    path = regular_file(path)
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception as err:  # DecodeError, missing external data ...
        raise EdgeditError(f"{path}: not a readable ONNX model ({str(err).splitlines()[0][:120]})") from err
    if not model.graph.node:
        raise EdgeditError(f"{path}: not an ONNX model (no graph nodes)")
    return model


def op_histogram(model) -> dict[str, int]:
    counts = collections.Counter(
        n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in model.graph.node
    )
    return dict(counts.most_common())


ELEMENT_TYPES = {1: "fp32", 10: "fp16", 16: "bf16", 3: "int8", 2: "uint8", 6: "int32", 7: "int64", 9: "bool"}


def node_output_types(model) -> dict[str, str]:
    """Node name -> the element type of its first output (ONNX shape inference): what a strongly typed
    TensorRT build runs each node in."""
    onnx = require("onnx", extra="train")
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: ELEMENT_TYPES.get(v.type.tensor_type.elem_type, "?")
        for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    return {n.name: types.get(n.output[0], "?") for n in inferred.graph.node if n.output}


def type_histogram(model) -> dict[str, dict[str, int]]:
    """{op type: {output type: nodes}}: an INT8 file's 'no FP32 GEMM' is read off it."""
    types = node_output_types(model)
    histogram: dict[str, dict[str, int]] = {}
    for n in model.graph.node:
        by_type = histogram.setdefault(n.op_type, {})
        by_type[types.get(n.name, "?")] = by_type.get(types.get(n.name, "?"), 0) + 1
    return dict(sorted(histogram.items()))


def is_qdq(model) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def metadata(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def set_metadata(model, values: dict[str, str], replace_prefix: str | None = None) -> None:
    """Set metadata_props entries; with `replace_prefix`, first drop every key that starts with it."""
    kept = [
        (p.key, p.value)
        for p in model.metadata_props
        if p.key not in values and not (replace_prefix and p.key.startswith(replace_prefix))
    ]
    del model.metadata_props[:]
    for key, value in [*kept, *values.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def name_nodes_by_module(model, strip_prefix: str = "net.") -> None:
    """Rename nodes '{module path}/{OpType}' from the torch exporter's name scopes, e.g.
    'blocks.3.attn.qkv/MatMul', so quantization exclusions and TensorRT layer names read like
    the model's state_dict. Duplicates get a numeric suffix."""
    seen: collections.Counter = collections.Counter()
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        module = ""
        if scopes:
            path = ast.literal_eval(scopes)[:-1]  # the last entry names the op itself
            module = path[-1] if path else ""
            if module.startswith(strip_prefix):
                module = module[len(strip_prefix) :]
            elif module == "net":
                module = ""
        base = f"{module}/{node.op_type}"
        node.name = base if not seen[base] else f"{base}_{seen[base]}"
        seen[base] += 1


QDQ_FP16_OPSET = 19  # QuantizeLinear / DequantizeLinear take float16 scales from opset 19 on


def to_fp16(model, keep_fp32: tuple[str, ...], io: str = "fp32"):
    """An FP16-typed graph: every float tensor FP16 except the nodes of the FP32 classes `keep_fp32`
    (`edgedit.contract.quantization.FP32_CLASSES`), with Casts at their borders (ONNX Runtime's float16
    converter); inputs and outputs FP32 (Casts at the boundary) unless `io` is "fp16". A Q/DQ graph
    keeps its INT8 tensors, its scales become FP16, and its opset is raised to 19 for that."""
    onnx = require("onnx", extra="train")
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from edgedit.contract.quantization import FP32_CLASSES, fp32_class

    if is_qdq(model) and default_opset(model) < QDQ_FP16_OPSET:
        model = onnx.version_converter.convert_version(model, QDQ_FP16_OPSET)
    ops = [op for name in keep_fp32 for op in FP32_CLASSES[name][0]]
    nodes = [
        n.name
        for n in model.graph.node
        if fp32_class(n.name, n.op_type) in keep_fp32 and n.op_type not in ("QuantizeLinear", "DequantizeLinear")
    ]
    with _quiet():
        return convert_float_to_float16(
            model, keep_io_types=io == "fp32", op_block_list=DEFAULT_OP_BLOCK_LIST + ops, node_block_list=nodes
        )


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's converters warn about what they do on purpose here."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def fold_constants(model):
    """Fold every constant subexpression (onnx-graphsurgeon, evaluated with ONNX Runtime), then drop
    what became unused: what demoDiffusion does before a TensorRT build."""
    gs = require("onnx_graphsurgeon", extra="train")
    graph = gs.import_onnx(model)
    graph.fold_constants().cleanup().toposort()
    folded = gs.export_onnx(graph)
    folded.ir_version = model.ir_version
    set_metadata(folded, metadata(model))
    return folded


def check_tensorrt_friendly(model, depth: int) -> None:
    """What the export promises TensorRT: default-domain ops only, no ONNX Attention op, one
    LayerNormalization per norm (2 per block + the final one)."""
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise EdgeditError(f"exported graph uses non-standard ops {', '.join(foreign)}; TensorRT cannot parse them")
    ops = op_histogram(model)
    if "Attention" in ops:
        raise EdgeditError("exported graph contains an ONNX Attention op; TensorRT 10.3 cannot parse it")
    if ops.get("LayerNormalization", 0) != 2 * depth + 1:
        raise EdgeditError(f"expected {2 * depth + 1} LayerNormalization ops, found {ops.get('LayerNormalization', 0)}")


def weight_bytes(model) -> int:
    return sum(len(t.raw_data) or 4 * len(t.float_data) for t in model.graph.initializer)


def save_onnx(model, path: Path, external_data_bytes: int = EXTERNAL_DATA_BYTES) -> Path | None:
    """Save; weights go to '<name>.data' next to it when the model is too big for one protobuf.
    Returns the external data path, if any."""
    onnx = require("onnx", extra="train")
    if weight_bytes(model) < external_data_bytes:
        onnx.save_model(model, str(path))
        return None
    data = artefacts.onnx_data(path)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )
    return data
