"""`edgedit info`: describe a file edgedit made or reads. Torch-free."""

from __future__ import annotations

import os
from pathlib import Path

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
    """Graph facts and the edgedit metadata, or what is missing from it. Where the onnx package is
    not installed (the device image), the file's header alone: metadata and opsets, no graph facts."""
    from edgedit.contract.spec import PREFIX, ModelMeta
    from edgedit.export import graph

    try:
        import onnx  # noqa: F401
    except ImportError:
        return _describe_onnx_header(path)
    model = graph.load_onnx(path, load_external_data=False)

    def tensor(value) -> dict:
        t = value.type.tensor_type
        return {"name": value.name, "elem_type": t.elem_type,
                "shape": [d.dim_param or d.dim_value for d in t.shape.dim]}

    report = {
        "type": "onnx",
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "external_data": any(t.data_location == 1 for t in model.graph.initializer),
        "sha256": sha256_file(path),
        "opset": graph.default_opset(model),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [tensor(v) for v in model.graph.input],
        "outputs": [tensor(v) for v in model.graph.output],
        "nodes": len(model.graph.node),
        "ops": graph.op_histogram(model),
        "types": graph.type_histogram(model),
        "qdq": graph.is_qdq(model),
    }
    metadata = graph.metadata(model)
    if not any(key.startswith(PREFIX) for key in metadata):  # a foreign model: describe the graph alone
        report["edgedit"] = None
        report["edgedit_problem"] = "no edgedit metadata (not exported by `edgedit export`)"
        return report
    meta = ModelMeta.from_metadata(metadata, str(path))  # present but damaged: refused like everywhere else
    meta.check_graph(str(path), *(_graph_io(report[kind]) for kind in ("inputs", "outputs")))
    report["edgedit"] = {"version": meta.version, "kind": meta.config.kind, "config": meta.config.to_dict(),
                         "precision": meta.precision, "batch": meta.batch, "sampler": meta.sampler,
                         "source": meta.source, **meta.extra}
    return report


def _describe_onnx_header(path: Path) -> dict:
    from edgedit.contract.onnx_header import read_onnx_header
    from edgedit.contract.spec import PREFIX, ModelMeta

    metadata, opsets = read_onnx_header(path)
    report = {"type": "onnx", "path": str(path), "size_bytes": path.stat().st_size,
              "external_data": None, "sha256": sha256_file(path), "opset": opsets.get("ai.onnx"), "producer": None,
              "inputs": None, "outputs": None, "nodes": None, "ops": None, "types": None, "qdq": None,
              "graph_not_read": "the onnx package is not installed: the header's metadata only"}
    if not any(key.startswith(PREFIX) for key in metadata):
        report["edgedit"] = None
        report["edgedit_problem"] = "no edgedit metadata (not exported by `edgedit export`)"
        return report
    meta = ModelMeta.from_metadata(metadata, str(path))
    report["inputs"], report["outputs"] = ([{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in specs]
                                           for specs in (meta.inputs, meta.outputs))
    report["edgedit"] = {"version": meta.version, "kind": meta.config.kind, "config": meta.config.to_dict(),
                         "precision": meta.precision, "batch": meta.batch, "sampler": meta.sampler,
                         "source": meta.source, **meta.extra}
    return report


# ONNX TensorProto element types of the tensors edgedit's graphs exchange.
_ONNX_DTYPES = {1: "float32", 10: "float16", 6: "int32", 7: "int64"}


def _graph_io(tensors: list[dict]) -> list[tuple]:
    return [(t["name"], _ONNX_DTYPES.get(t["elem_type"], str(t["elem_type"])),
             tuple(d if isinstance(d, int) and d > 0 else "N" for d in t["shape"])) for t in tensors]


def describe_engine(path: Path) -> dict:
    """An engine, from its sidecar: no TensorRT needed to describe it."""
    from edgedit.contract.sidecar import read_sidecar, sidecar_meta

    record = read_sidecar(path)
    meta = sidecar_meta(record, str(path))
    return {"type": "engine", "path": str(path), "size_bytes": path.stat().st_size, "sha256": sha256_file(path),
            "kind": meta.config.kind, "config": meta.config.to_dict(), "precision": record["precision"],
            "strongly_typed": record["strongly_typed"], "batch": meta.batch, "device": record["device"],
            "onnx": {k: v for k, v in record["onnx"].items() if k != "metadata"}, "builder": record["builder"],
            "build_seconds": record["build_seconds"], "peak_rss_mb": record["peak_rss_mb"],
            "edgedit_version": record.get("edgedit_version")}


def file_report(path: str | os.PathLike) -> dict:
    path = regular_file(path)
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        return describe_checkpoint(path)
    if path.suffix == ".onnx":
        return describe_onnx(path)
    if path.suffix == ".plan":
        return describe_engine(path)
    raise EdgeditError(f"{path}: unrecognised file type; `edgedit info` describes .safetensors checkpoints, "
                       ".onnx models and .plan engines")


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
        if path.suffix == ".onnx":
            from edgedit.contract.onnx_header import read_onnx_header
            from edgedit.contract.spec import ModelMeta

            meta = ModelMeta.from_metadata(read_onnx_header(path)[0], str(path))
            return meta.config, path.name, meta.precision_plan
        if path.suffix == ".plan":
            from edgedit.contract.sidecar import read_sidecar, sidecar_meta

            meta = sidecar_meta(read_sidecar(path), str(path))
            return meta.config, path.name, meta.precision_plan
        from edgedit.models.checkpoint import read_checkpoint

        return read_checkpoint(path).config, path.name, None
    return resolve_config(model, **overrides), get_preset(model).name + (" (modified)" if changed else ""), None
