"""What a deployed model is: its named inputs and outputs, its sampler, and where it came from.

This is the contract between the workstation and the device. `export` writes it into the ONNX
file's metadata_props (keys `edgedit.*`), `build-engine` copies it into the engine's sidecar,
and the device side reads it back with `ModelMeta.from_metadata`, needing no other file.

Graph I/O by diffusion formulation (N = batch, C/H/W = the model's input geometry):
  one-step  z (N,C,H,W) float32 [, y (N,) int32]                      -> image    (N,C,H,W)
  edm       x (N,C,H,W) float32, sigma (N,) float32 [, y (N,) int32]  -> denoised (N,C,H,W)
  ddpm      x (N,C,H,W) float32, t (N,) float32 [, y (N,) int32]      -> out      (N,C_out,H,W)
EDM preconditioning (c_skip, c_out, c_in, c_noise with sigma_data 0.5) lives inside the graph,
so one network evaluation is the denoiser D(x; sigma, y) and every backend computes the same
function; the samplers only step the ODE. Labels are int32, the type TensorRT handles best.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.onnx_header import OnnxGraph
from edgedit.contract.quantization import FP32_CLASSES, HIGH_PRECISIONS, INT8_CLASSES, PrecisionPlan
from edgedit.contract.schedules import DdpmSampler, EdmSampler, OneStepSampler, SamplerSpec
from edgedit.contract.schema import MAX_BATCH, MAX_SIDE, Name, Record, Sha256, loads, parse

BATCH = "N"  # the symbolic batch dimension


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple  # ints, with BATCH for the batch dimension

    def concrete(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == BATCH else d for d in self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(d["name"], d["dtype"], tuple(d["shape"]))


def io_spec(cfg: DiTConfig, float_dtype: str = "float32") -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The exported graph's inputs and outputs; `float_dtype` "float16" for an FP16-I/O INT8 model."""
    image, f = (BATCH, cfg.in_channels, cfg.input_size, cfg.input_size), float_dtype
    if cfg.diffusion == "one-step":
        inputs, output = [TensorSpec("z", f, image)], TensorSpec("image", f, image)
    elif cfg.diffusion == "edm":
        inputs = [TensorSpec("x", f, image), TensorSpec("sigma", f, (BATCH,))]
        output = TensorSpec("denoised", f, image)
    else:
        inputs = [TensorSpec("x", f, image), TensorSpec("t", f, (BATCH,))]
        output = TensorSpec("out", f, (BATCH, cfg.out_channels, cfg.input_size, cfg.input_size))
    if cfg.class_conditional:
        inputs.append(TensorSpec("y", "int32", (BATCH,)))
    return inputs, [output]


#################################################################################
#                                 Model metadata                                #
#################################################################################

PREFIX = "edgedit."
FORMAT = "edgedit.onnx/1"
REQUIRED_KEYS = ("format", "version", "config", "inputs", "outputs", "sampler", "precision", "batch", "source")


@dataclass
class ModelMeta:
    config: DiTConfig
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    sampler: OneStepSampler | EdmSampler | DdpmSampler  # contract/schedules.py
    precision: str  # fp32 | fp16 | int8
    batch: dict[str, int]  # min / opt / max
    source: dict[str, Any]  # checkpoint path + sha256, or preset + "random weights"
    version: str
    extra: dict[str, Any] = field(default_factory=dict)  # parity, quantization ...

    @property
    def dynamic_batch(self) -> bool:
        return self.batch["min"] != self.batch["max"]

    @property
    def random_weights(self) -> bool:
        return self.source.get("weights") == "random"

    @property
    def precision_plan(self) -> PrecisionPlan | None:
        """A typed file's plan (`edgedit.plan`: FP16 exports and INT8 files); INT8 files from before plans
        ran the recipe's classes typed FP32; FP32 files have none."""
        if "plan" in self.extra:
            return PrecisionPlan.from_dict(self.extra["plan"])
        return PrecisionPlan(high="fp32", fp32=()) if "quantization" in self.extra else None

    def to_metadata(self) -> dict[str, str]:
        meta = {
            "format": FORMAT,
            "version": self.version,
            "config": self.config.to_dict(),
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "sampler": self.sampler.model_dump(),
            "precision": self.precision,
            "batch": self.batch,
            "source": self.source,
            **self.extra,
        }
        return {PREFIX + k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items()}

    def check_graph(self, graph: OnnxGraph) -> None:
        """The graph must be what this metadata says, or a lying file would fail later inside the executor
        (or worse, run): its inputs and outputs (names, types, dims; a static export fixes N), the class
        count against the label embedding's rows, and the precision against the weights' types and Q/DQ."""
        where = str(graph.path)
        static = None if self.dynamic_batch else self.batch["max"]
        for kind, found, specs in (("inputs", graph.inputs, self.inputs), ("outputs", graph.outputs, self.outputs)):
            wanted = [(s.name, s.dtype, s.concrete(static) if static else s.shape) for s in specs]
            have = [
                (
                    v.name,
                    ONNX_DTYPES.get(v.elem_type, str(v.elem_type)),
                    tuple(d if isinstance(d, int) and d > 0 else "N" for d in v.dims),
                )
                for v in found
            ]
            if have != wanted:
                raise EdgeditError(
                    f"{where}: the graph's {kind} {have} disagree with its edgedit metadata {wanted}; re-export it"
                )
        cfg = self.config
        tables = [
            graph.weights[n.inputs[0]]
            for n in graph.nodes
            if n.op_type == "Gather" and n.name.startswith("y_embedder") and n.inputs and n.inputs[0] in graph.weights
        ]
        rows = cfg.num_classes + (1 if cfg.class_dropout_prob > 0 else 0)  # DiT's extra row: the null class of CFG
        if cfg.class_conditional and [t.dims[0] for t in tables] != [rows]:
            found = f"{tables[0].dims[0]} rows" if tables else "no label embedding"
            raise EdgeditError(
                f"{where}: its edgedit metadata claims {cfg.num_classes} classes (a label embedding of "
                f"{rows} rows) but the graph has {found}; the file was altered: re-export it"
            )
        qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.nodes)
        half = any(w.data_type == ONNX_FLOAT16 for w in graph.weights.values())
        actual = "int8" if qdq else "fp16" if half else "fp32"
        if actual != self.precision:
            raise EdgeditError(
                f"{where}: its edgedit metadata says {self.precision} but the graph is {actual} "
                f"({'Q/DQ nodes' if qdq else 'FP16 weights' if half else 'FP32 weights, no Q/DQ'}); "
                "the file was altered: re-export it"
            )

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], where: str) -> ModelMeta:
        """Parse and check `edgedit.*` metadata: every field against its schema, then the whole against
        the config it names. A foreign or damaged file gets one line naming the field."""
        ours = {k[len(PREFIX) :]: v for k, v in metadata.items() if k.startswith(PREFIX)}
        if not ours:
            raise EdgeditError(
                f"{where}: no edgedit metadata (metadata_props 'edgedit.*'); this model was not exported by "
                "`edgedit export`, so its inputs, sampler and source are unknown. Export it with `edgedit export`"
            )
        missing = [PREFIX + k for k in REQUIRED_KEYS if k not in ours]
        if missing:
            raise EdgeditError(f"{where}: incomplete edgedit metadata, missing {', '.join(missing)}; re-export it")
        if ours["format"] != FORMAT:
            raise EdgeditError(f"{where}: edgedit metadata format {ours['format']!r} is not {FORMAT!r}; re-export it")
        decoded = {
            k: v
            if k in ("format", "version", "precision", "weights_sha256")
            else loads(v, where, f"edgedit metadata ({PREFIX}{k})", "re-export it")
            for k, v in ours.items()
        }
        try:
            config = DiTConfig.from_dict(decoded.pop("config"))
        except EdgeditError as err:
            raise EdgeditError(f"{where}: {PREFIX}config: {err}; re-export it") from None
        record = parse(
            MetadataRecord,
            {k: v for k, v in decoded.items() if k in MetadataRecord.model_fields},
            where,
            "edgedit metadata",
            "re-export it",
        )
        inputs = [TensorSpec(t.name, t.dtype, tuple(t.shape)) for t in record.inputs]
        outputs = [TensorSpec(t.name, t.dtype, tuple(t.shape)) for t in record.outputs]
        # Self-consistency: the I/O and the sampler are functions of the config (float I/O FP32, or all of
        # it FP16 for a model quantized with --io-dtype fp16).
        half = record.precision == "int8" and any(t.dtype == "float16" for t in [*inputs, *outputs])
        expected_in, expected_out = io_spec(config, float_dtype="float16" if half else "float32")
        for key, found, expected in (("inputs", inputs, expected_in), ("outputs", outputs, expected_out)):
            if found != expected:
                size = f"{config.in_channels}x{config.input_size}x{config.input_size}"
                raise EdgeditError(
                    f"{where}: {PREFIX}{key} contradict its config: {_tensors(found)}, where its "
                    f"config ({config.kind}, {size}) has {_tensors(expected)}; re-export it"
                )
        if record.sampler.type != config.diffusion:
            raise EdgeditError(
                f"{where}: {PREFIX}sampler is {record.sampler.type!r} but the config is a {config.kind}; re-export it"
            )
        return cls(
            config=config,
            inputs=inputs,
            outputs=outputs,
            sampler=record.sampler,
            precision=record.precision,
            batch=record.batch.model_dump(),
            source=record.source,
            version=record.version,
            extra={
                **{k: v for k, v in decoded.items() if k not in MetadataRecord.model_fields and k != "format"},
                **record.model_dump(include={"parity", "plan", "quantization", "weights_sha256"}, exclude_none=True),
            },
        )


ONNX_DTYPES = {1: "float32", 10: "float16", 6: "int32", 7: "int64"}  # TensorProto element types of edgedit's I/O
ONNX_FLOAT16 = 10
_READ: dict[tuple, tuple[ModelMeta, OnnxGraph]] = {}  # (path, size, mtime, verifying) -> what was read


def read_model(path: str | os.PathLike) -> tuple[ModelMeta, OnnxGraph]:
    """An edgedit ONNX file, validated: its metadata against its schema, the graph against the metadata,
    and (unless verification is off: --no-verify) its weights against the content hash the metadata
    records. Files written before the hash are read unverified, with a warning. Read once per process
    while the file is unchanged; every command that takes an .onnx reads it here."""
    import logging

    from edgedit.contract.fileio import regular_file, verifying
    from edgedit.contract.onnx_header import read_onnx_graph, weights_sha256

    path = regular_file(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, verifying())
    if key not in _READ:
        graph = read_onnx_graph(path)
        meta = ModelMeta.from_metadata(graph.metadata, str(path))
        meta.check_graph(graph)
        recorded = meta.extra.get("weights_sha256")
        if verifying() and recorded is None:
            logging.getLogger("edgedit").warning(
                "%s: written before ONNX files carried a content hash; its weights are not verified", path.name
            )
        elif verifying() and weights_sha256(graph) != recorded:
            raise EdgeditError(
                f"{path}: its weights do not match the content hash in its metadata (the file is "
                "damaged or was altered); restore it from a good copy, or read it anyway with "
                "`edgedit --no-verify ...`"
            )
        _READ[key] = (meta, graph)
    meta, graph = _READ[key]
    return dataclasses.replace(meta, extra=dict(meta.extra)), graph  # callers may change their copy


def _tensors(specs: list[TensorSpec]) -> str:
    return ", ".join(f"{t.name} {t.dtype} ({','.join(map(str, t.shape))})" for t in specs)


#################################################################################
#                          The metadata's schema                                #
#################################################################################

Dim = Annotated[int, Field(ge=1, le=MAX_SIDE)] | Literal["N"]


class TensorRecord(Record):
    name: Name
    dtype: Literal["float32", "float16", "int32", "int64"]
    shape: list[Dim] = Field(min_length=1, max_length=4)


class BatchRecord(Record):
    min: int = Field(ge=1, le=MAX_BATCH)
    opt: int = Field(ge=1, le=MAX_BATCH)
    max: int = Field(ge=1, le=MAX_BATCH)

    @model_validator(mode="after")
    def ordered(self) -> BatchRecord:
        if not self.min <= self.opt <= self.max:
            raise ValueError(f"need min <= opt <= max, got {self.min}, {self.opt}, {self.max}")
        return self


class ParityCheck(Record):
    """`export`'s check of the ONNX file against torch at one batch size."""

    batch: int = Field(ge=1, le=MAX_BATCH)
    max_abs_error: float = Field(ge=0)
    max_rel_error: float = Field(ge=0)
    tolerance: float = Field(gt=0)


class PlanRecord(Record):
    """A precision plan (`edgedit.contract.quantization.PrecisionPlan`)."""

    int8: list[Literal[tuple(INT8_CLASSES)]] = Field(max_length=len(INT8_CLASSES))
    high: Literal[HIGH_PRECISIONS]
    fp32: list[Literal[tuple(FP32_CLASSES)]] = Field(max_length=len(FP32_CLASSES))
    io: Literal[HIGH_PRECISIONS]


class QuantizationRecord(Record):
    """`quantize`'s account of an INT8 file: what was quantized and how close it stays to FP32 (its
    plan is the file's `plan`). Files written before precision plans (edgedit 0.1) carry
    `recipe_layers` instead: the recipe's classes, the rest typed FP32."""

    tool: Annotated[str, Field(max_length=64)]
    method: Annotated[str, Field(max_length=64)]
    quantized_nodes: int = Field(ge=0, le=1_000_000)
    excluded_nodes: int = Field(ge=0, le=1_000_000)
    exclude_patterns: list[Annotated[str, Field(max_length=256)]] = Field(max_length=256)
    plan_search: Literal["auto", "recipe"] | None = None
    budget_psnr_db: float | None = None
    recipe_layers: bool | None = None
    calibration_rows: int = Field(ge=1)
    heldout_rows: int = Field(ge=1)
    psnr_db: float | None  # None: identical to FP32 (infinite PSNR, which JSON cannot hold)
    max_abs_error: float = Field(ge=0)
    source_sha256: Sha256


class MetadataRecord(Record):
    """The `edgedit.*` metadata_props besides `format` and `config` (DiTConfig checks that one).
    Keys this version does not know are kept as they are (a newer edgedit may add some)."""

    version: Annotated[str, Field(max_length=64)]
    inputs: list[TensorRecord] = Field(min_length=1, max_length=3)
    outputs: list[TensorRecord] = Field(min_length=1, max_length=1)
    sampler: SamplerSpec
    precision: Literal["fp32", "fp16", "int8"]
    batch: BatchRecord
    source: dict[str, Any]
    parity: list[ParityCheck] | None = Field(default=None, max_length=16)
    plan: PlanRecord | None = None  # typed FP16 and INT8 files: what runs in which type
    weights_sha256: Sha256 | None = None  # over every weight (contract.onnx_header.weights_sha256)
    quantization: QuantizationRecord | None = None
