"""`edgedit info`: describe a file edgedit made or reads. Torch-free."""

from __future__ import annotations

import os
from pathlib import Path

from edgedit.contract import artefacts
from edgedit.contract.config import names_a_file
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import regular_file, sha256_file
from edgedit.cost import accounting


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"  # 8-byte header length, then the JSON header


def describe_checkpoint(path: Path) -> dict:
    from edgedit.models.checkpoint import read_checkpoint

    info = read_checkpoint(path)
    dtypes = sorted({dtype for dtype, _ in info.tensors.values()})
    return {
        "type": "checkpoint",
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "edgedit_version": info.metadata.get("edgedit.version"),
        "kind": info.config.kind,
        "config": info.config.to_dict(),
        "params": info.num_params,
        "macs": accounting.count_macs(info.config),
        "tensors": len(info.tensors),
        "dtypes": dtypes,
        "noise": info.noise,
        "provenance": info.provenance,
    }


def describe_onnx(path: Path) -> dict:
    """Graph facts and the edgedit metadata (checked against the graph and the weights' hash, as every
    command reads an ONNX), or what is missing from it; read without onnx (the device image has none).
    Where onnx is installed, the nodes' output types too (shape inference)."""
    import collections

    from edgedit.contract.onnx_header import read_onnx_graph
    from edgedit.contract.spec import PREFIX, read_model

    graph = read_onnx_graph(path)
    report = {
        "type": "onnx",
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "external_data": any(w.external for w in graph.weights.values()),
        "sha256": sha256_file(path),
        "opset": graph.opsets.get("ai.onnx"),
        "producer": graph.producer,
        "inputs": [_tensor(v) for v in graph.inputs],
        "outputs": [_tensor(v) for v in graph.outputs],
        "nodes": len(graph.nodes),
        "ops": dict(collections.Counter(n.op_type for n in graph.nodes).most_common()),
        "types": _types(path),
        "qdq": any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.nodes),
    }
    if not any(key.startswith(PREFIX) for key in graph.metadata):  # a foreign model: describe the graph alone
        report["edgedit"] = None
        report["edgedit_problem"] = "no edgedit metadata (not exported by `edgedit export`)"
        return report
    meta, _ = read_model(path)  # present but damaged or lying: refused like everywhere else
    report["edgedit"] = {
        "version": meta.version,
        "kind": meta.config.kind,
        "config": meta.config.to_dict(),
        "precision": meta.precision,
        "batch": meta.batch,
        "sampler": meta.sampler.model_dump(),
        "source": meta.source,
        **meta.extra,
    }
    return report


def _tensor(value) -> dict:
    return {"name": value.name, "elem_type": value.elem_type, "shape": list(value.dims)}


def _types(path: Path) -> dict | None:
    """{op: {output type: nodes}} where onnx is installed, else None."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return None
    from edgedit.export import graph

    return graph.type_histogram(graph.load_onnx(path, load_external_data=False))


def describe_engine(path: Path) -> dict:
    """An engine, from its sidecar: no TensorRT needed to describe it."""
    from edgedit.contract.sidecar import read_sidecar, sidecar_meta

    record = read_sidecar(path)
    meta = sidecar_meta(record, str(path))
    return {
        "type": "engine",
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "kind": meta.config.kind,
        "config": meta.config.to_dict(),
        "precision": record.precision,
        "strongly_typed": record.strongly_typed,
        "batch": meta.batch,
        "device": record.device.model_dump(mode="json"),
        "onnx": record.onnx.model_dump(mode="json", exclude={"metadata"}),
        "builder": record.builder.model_dump(mode="json"),
        "build_seconds": record.build_seconds,
        "peak_rss_mb": record.peak_rss_mb,
        "edgedit_version": record.edgedit_version,
    }


def file_report(path: str | os.PathLike) -> dict:
    path = regular_file(path)
    if path.suffix == artefacts.CHECKPOINT or _looks_like_safetensors(path):
        return describe_checkpoint(path)
    if path.suffix == artefacts.ONNX:
        return describe_onnx(path)
    if artefacts.is_engine(path):
        return describe_engine(path)
    raise EdgeditError(
        f"{path}: unrecognised file type; `edgedit info` describes .safetensors checkpoints, "
        f".onnx models and TensorRT engines ({', '.join(artefacts.ENGINE_READ)})"
    )


def model_config(model: str, **overrides) -> tuple:
    """(DiTConfig, display name, precision plan or None) of a preset name (with overrides), a
    checkpoint, an ONNX export (a quantized one has a plan) or an engine, read from the file's header
    without loading weights."""
    from edgedit.contract.config import get_preset, resolve_config

    path = Path(model)
    changed = {k: v for k, v in overrides.items() if v is not None}
    if names_a_file(path):
        if changed:
            raise EdgeditError(f"{model}: model overrides apply to presets, not to a file (its config is fixed)")
        regular_file(path)
        if path.suffix == artefacts.ONNX:
            from edgedit.contract.spec import read_model

            meta = read_model(path)[0]
            return meta.config, path.name, meta.precision_plan
        if artefacts.is_engine(path):
            from edgedit.contract.sidecar import read_sidecar, sidecar_meta

            meta = sidecar_meta(read_sidecar(path), str(path))
            return meta.config, path.name, meta.precision_plan
        from edgedit.models.checkpoint import read_checkpoint

        return read_checkpoint(path).config, path.name, None
    return resolve_config(model, **overrides), get_preset(model).name + (" (modified)" if changed else ""), None
