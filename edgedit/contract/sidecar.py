"""Engine sidecars (`NAME.plan.json`) and the facts of the device an engine is built for. Torch-free.

A TensorRT engine only runs on the TensorRT version and GPU that built it, so the sidecar
records both and an engine is refused, before deserialization, where they differ, or where the
engine's bytes are not those the sidecar's size and sha256 describe. The sidecar also carries the
ONNX file's edgedit metadata, so `sample` and `bench` need no other file.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from edgedit import __version__
from edgedit.contract import artefacts, device, jetson
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import regular_file, sha256_file
from edgedit.contract.schema import Name, OpenRecord, Record, Sha256, load_json, parse
from edgedit.contract.spec import ModelMeta
from edgedit.contract.staging import write_text_atomic

FORMAT = "edgedit.engine/1"


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
        "jetson": facts.model_dump() if (facts := jetson.probe()) else None,
    }


def write_sidecar(path: Path, record: dict[str, Any]) -> SidecarRecord:
    """The sidecar, checked against the schema its readers use (SidecarRecord, on the JSON it becomes)
    before it is written: a writer cannot produce a file its own reader refuses. Returns the record."""
    text = json.dumps({"format": FORMAT, "edgedit_version": __version__, **record}, indent=2, allow_nan=False)
    written = parse(SidecarRecord, json.loads(text), path, "engine sidecar (as written: a bug in edgedit)")
    write_text_atomic(path, text)
    return written


class DeviceRecord(OpenRecord):
    tensorrt: Annotated[str, Field(min_length=1, max_length=64)]
    gpu: Annotated[str, Field(max_length=256)] | None
    compute_capability: Annotated[str, Field(pattern=r"^\d{1,2}\.\d{1,2}$")] | None
    cuda_driver: Annotated[str, Field(max_length=32)] | None
    platform: Annotated[str, Field(max_length=256)]
    jetson: jetson.JetsonFacts | None


class BuilderRecord(OpenRecord):
    tool: Literal["trtexec", "polygraphy"]


class OnnxSourceRecord(Record):
    file: Name
    sha256: Sha256
    metadata: dict[str, str]
    quantized_from: Name | None


class SidecarRecord(Record):
    format: Literal["edgedit.engine/1"]
    edgedit_version: Annotated[str, Field(max_length=64)]
    precision: Literal["fp32", "fp16", "int8", "best"]
    strongly_typed: bool
    builder: BuilderRecord
    trtexec_equivalent: str
    device: DeviceRecord
    onnx: OnnxSourceRecord
    io: dict[str, Any]
    build_seconds: float = Field(ge=0)
    peak_rss_mb: float = Field(ge=0)
    tegrastats: jetson.TegrastatsSummary | None
    plan_bytes: int = Field(ge=1)
    plan_sha256: Sha256


def read_sidecar(plan: str | os.PathLike) -> SidecarRecord:
    """The engine's sidecar, checked against its schema and against the engine file (its size), before
    anything deserializes the engine."""
    path, plan = artefacts.sidecar(plan), Path(plan)
    regular_file(plan, "engine file")
    artefacts.note_engine_suffix(plan)
    if not path.is_file():
        raise EdgeditError(
            f"{plan}: its sidecar {path.name} is missing; edgedit needs it to know the engine's "
            "inputs and where it was built. Rebuild with `edgedit build-engine`"
        )
    fix = "rebuild the engine with `edgedit build-engine`"
    record = parse(
        SidecarRecord, load_json(path, "engine sidecar", fix, max_bytes=16 << 20), path, "engine sidecar", fix
    )
    if plan.stat().st_size != record.plan_bytes or sha256_file(plan) != record.plan_sha256:
        raise EdgeditError(
            f"{plan}: not the engine its sidecar describes ({plan.stat().st_size} bytes, the sidecar "
            f"says {record.plan_bytes} and another sha256): truncated, altered or replaced; {fix}"
        )
    return record


def sidecar_meta(record: SidecarRecord, where: str) -> ModelMeta:
    meta = ModelMeta.from_metadata(record.onnx.metadata, f"{where} (its sidecar's ONNX metadata)")
    meta.precision = record.precision  # what the engine computes in, which may differ from the ONNX's
    return meta


def check_compatible(record: SidecarRecord, tensorrt_version: str, gpu: str | None, where: str) -> None:
    """Refuse an engine built by another TensorRT version or on another GPU: engines are not portable."""
    built = record.device
    if built.tensorrt != tensorrt_version:
        raise EdgeditError(
            f"{where}: built with TensorRT {built.tensorrt}, this is TensorRT {tensorrt_version}; "
            "engines are not portable: rebuild it here with `edgedit build-engine`"
        )
    if gpu is not None and built.gpu != gpu:
        raise EdgeditError(
            f"{where}: built on {built.gpu} (sm {built.compute_capability}), this GPU is {gpu}; "
            "engines are not portable: rebuild it here with `edgedit build-engine`"
        )
