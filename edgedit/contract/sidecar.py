"""Engine sidecars (`NAME.plan.json`) and the facts of the device an engine is built for. Torch-free.

A TensorRT engine only runs on the TensorRT version and GPU that built it, so the sidecar
records both and an engine is refused, before deserialization, where they differ. The sidecar
also carries the ONNX file's edgedit metadata, so `sample` and `bench` need no other file.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from edgedit import __version__
from edgedit.contract import device, jetson
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import write_text_atomic
from edgedit.contract.spec import ModelMeta

FORMAT = "edgedit.engine/1"


def sidecar_path(plan: str | os.PathLike) -> Path:
    plan = Path(plan)
    return plan.with_name(plan.name + ".json")


def device_facts(tensorrt_version: str) -> dict[str, Any]:
    """TensorRT version, GPU name and compute capability, and the Jetson's module, L4T and power mode."""
    cuda = device.cuda_devices()
    gpu = cuda["devices"][0] if cuda["devices"] else None
    return {
        "tensorrt": tensorrt_version,
        "gpu": gpu["name"] if gpu else None,
        "compute_capability": gpu["compute_capability"] if gpu else None,
        "cuda_driver": cuda["driver"],
        "platform": f"{platform.system()} {platform.machine()}",
        "jetson": jetson.probe(),
    }


def write_sidecar(path: Path, record: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps({"format": FORMAT, "edgedit_version": __version__, **record}, indent=2))


def read_sidecar(plan: str | os.PathLike) -> dict[str, Any]:
    path = sidecar_path(plan)
    if not Path(plan).is_file():
        raise EdgeditError(f"{plan}: no such engine file")
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeditError(f"{plan}: its sidecar {path.name} is missing; edgedit needs it to know the engine's "
                           "inputs and where it was built. Rebuild with `edgedit build-engine`") from None
    except json.JSONDecodeError as err:
        raise EdgeditError(f"{path}: damaged sidecar ({err}); rebuild the engine with `edgedit build-engine`") from err
    if record.get("format") != FORMAT:
        raise EdgeditError(f"{path}: not an edgedit engine sidecar (format {record.get('format')!r})")
    return record


def sidecar_meta(record: dict[str, Any], where: str) -> ModelMeta:
    meta = ModelMeta.from_metadata(record["onnx"]["metadata"], where)
    meta.precision = record["precision"]  # what the engine computes in, which may differ from the ONNX's
    return meta


def check_compatible(record: dict[str, Any], tensorrt_version: str, gpu: str | None, where: str) -> None:
    """Refuse an engine built by another TensorRT version or on another GPU: engines are not portable."""
    built = record["device"]
    if built["tensorrt"] != tensorrt_version:
        raise EdgeditError(f"{where}: built with TensorRT {built['tensorrt']}, this is TensorRT {tensorrt_version}; "
                           "engines are not portable: rebuild it here with `edgedit build-engine`")
    if gpu is not None and built["gpu"] != gpu:
        raise EdgeditError(f"{where}: built on {built['gpu']} (sm {built['compute_capability']}), this GPU is {gpu}; "
                           "engines are not portable: rebuild it here with `edgedit build-engine`")
