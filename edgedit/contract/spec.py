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

import json
from dataclasses import dataclass, field
from typing import Any

from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError

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


def io_spec(cfg: DiTConfig) -> tuple[list[TensorSpec], list[TensorSpec]]:
    image = (BATCH, cfg.in_channels, cfg.input_size, cfg.input_size)
    if cfg.diffusion == "one-step":
        inputs, output = [TensorSpec("z", "float32", image)], TensorSpec("image", "float32", image)
    elif cfg.diffusion == "edm":
        inputs = [TensorSpec("x", "float32", image), TensorSpec("sigma", "float32", (BATCH,))]
        output = TensorSpec("denoised", "float32", image)
    else:
        inputs = [TensorSpec("x", "float32", image), TensorSpec("t", "float32", (BATCH,))]
        output = TensorSpec("out", "float32", (BATCH, cfg.out_channels, cfg.input_size, cfg.input_size))
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
    sampler: dict[str, Any]
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

    def to_metadata(self) -> dict[str, str]:
        meta = {
            "format": FORMAT,
            "version": self.version,
            "config": self.config.to_dict(),
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "sampler": self.sampler,
            "precision": self.precision,
            "batch": self.batch,
            "source": self.source,
            **self.extra,
        }
        return {PREFIX + k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], where: str) -> ModelMeta:
        """Parse `edgedit.*` metadata; a foreign or damaged file gets one line naming what is missing."""
        ours = {k[len(PREFIX):]: v for k, v in metadata.items() if k.startswith(PREFIX)}
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
        try:
            decoded = {k: v if k in ("format", "version", "precision") else json.loads(v) for k, v in ours.items()}
        except json.JSONDecodeError as err:
            raise EdgeditError(f"{where}: damaged edgedit metadata ({err}); re-export it") from err
        try:
            config = DiTConfig.from_dict(decoded.pop("config"))
        except EdgeditError as err:
            raise EdgeditError(f"{where}: {err}") from err
        return cls(
            config=config,
            inputs=[TensorSpec.from_dict(d) for d in decoded.pop("inputs")],
            outputs=[TensorSpec.from_dict(d) for d in decoded.pop("outputs")],
            sampler=decoded.pop("sampler"),
            precision=decoded.pop("precision"),
            batch=decoded.pop("batch"),
            source=decoded.pop("source"),
            version=decoded.pop("version"),
            extra={k: v for k, v in decoded.items() if k != "format"},
        )
