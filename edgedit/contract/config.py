"""Model configurations and the preset registry.

A `DiTConfig` fully determines a network: its tensors, its cost and its I/O. It round-trips
through JSON (checkpoint metadata, ONNX metadata, engine sidecars), so that a file always
carries what is needed to rebuild or describe the model. Torch-free.

Field names follow facebookresearch/DiT's constructor (input_size, patch_size, hidden_size ...);
the CLI spells the common ones as --width, --heads, --patch (cli/common.FIELD_OPTIONS).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, PlainValidator, ValidationError

from edgedit.contract import artefacts
from edgedit.contract.errors import EdgeditError
from edgedit.contract.schema import MAX_CHANNELS, MAX_SIDE, fields_record, first_problem, loads

Diffusion = Literal["ddpm", "edm", "one-step"]
FREQUENCY_EMBEDDING_SIZE = 256  # DiT's sinusoidal timestep features
MAX_WIDTH, MAX_DEPTH = 16384, 1024
# Fields a caller sets (presets' overrides): an invalid one is named in the message.
NAMED_FIELDS = ("hidden_size", "num_heads", "patch_size", "depth", "mlp_ratio", "num_classes")


@dataclass(frozen=True)
class DiTConfig:
    """A DiT. Defaults are DiT-XL/2 as in facebookresearch/DiT (256x256 images, 32x32x4 latents).
    Each field's bound is generous for any real DiT (DiT-XL/2 is depth 28, width 1152) and keeps a
    hostile file from describing a network no machine could hold."""

    input_size: Annotated[int, Field(ge=1, le=MAX_SIDE)] = 32  # side of the square input (pixels or latents)
    in_channels: Annotated[int, Field(ge=1, le=MAX_CHANNELS)] = 4
    patch_size: Annotated[int, Field(ge=1, le=64)] = 2
    hidden_size: Annotated[int, Field(ge=4, le=MAX_WIDTH)] = 1152  # width D
    depth: Annotated[int, Field(ge=1, le=MAX_DEPTH)] = 28
    num_heads: Annotated[int, Field(ge=1, le=256)] = 16
    mlp_ratio: Annotated[float, Field(gt=0, le=64)] = 4.0
    num_classes: Annotated[int, Field(ge=0, le=100_000)] = 1000  # 0 = unconditional
    class_dropout_prob: Annotated[float, Field(ge=0, lt=1)] = 0.1  # > 0 adds the "null" label row (CFG)
    learn_sigma: bool = True  # output 2C channels (epsilon and variance), as DiT's DDPM models do
    # How the network is used: "ddpm" (DiT's discrete-time epsilon/variance prediction, t = 0..999),
    # "edm" (an EDM denoiser D(x; sigma), preconditioning around the network), or "one-step"
    # (a GET-style generator: unit-variance noise z -> image x, no timestep input).
    diffusion: Diffusion = "ddpm"

    def __post_init__(self) -> None:
        try:  # types and ranges, by the schema; the relations between fields below
            fields_record(DiTConfig).model_validate(dataclasses.asdict(self))
        except ValidationError as err:
            field = str(err.errors()[0]["loc"][0]) if err.errors()[0]["loc"] else ""
            flag = f" (`{field}`)" if field in NAMED_FIELDS else ""
            raise EdgeditError(f"invalid model config{flag}: {first_problem(err)}") from None
        problems = []
        if self.input_size % self.patch_size:
            problems.append(f"input size {self.input_size} is not divisible by patch size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            problems.append(f"width {self.hidden_size} is not divisible by {self.num_heads} heads")
        if self.hidden_size % 4:
            problems.append(f"width {self.hidden_size} must be a multiple of 4 (2-D sin-cos position embedding)")
        if int(self.hidden_size * self.mlp_ratio) < 1:
            problems.append(f"mlp ratio {self.mlp_ratio} leaves no MLP hidden units")
        if self.learn_sigma and self.diffusion != "ddpm":
            problems.append(f"learn_sigma (a variance output) only exists for ddpm models, not {self.diffusion}")
        if problems:
            raise EdgeditError("invalid model config: " + "; ".join(problems))

    # Derived quantities -------------------------------------------------------------------
    @property
    def one_step(self) -> bool:
        return self.diffusion == "one-step"

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def grid_size(self) -> int:
        return self.input_size // self.patch_size

    @property
    def num_patches(self) -> int:  # tokens T
        return self.grid_size**2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)  # as timm's Mlp / DiT's DiTBlock

    @property
    def class_conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def label_rows(self) -> int:
        return self.num_classes + (1 if self.class_dropout_prob > 0 else 0)

    @property
    def conditioned(self) -> bool:
        """True when there is a conditioning vector c (timestep and/or class) driving adaLN."""
        return not self.one_step or self.class_conditional

    @property
    def kind(self) -> str:
        return {"ddpm": "DDPM denoiser", "edm": "EDM denoiser", "one-step": "one-step generator"}[self.diffusion]

    # JSON round-trip ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiTConfig:
        if not isinstance(data, dict):
            raise EdgeditError(f"invalid model config: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EdgeditError(
                f"invalid model config: unknown field(s) {', '.join(unknown)}; "
                f"known fields are {', '.join(sorted(known))} (was the file written by a newer edgedit?)"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> DiTConfig:
        return cls.from_dict(loads(text, "edgedit.config", "model config"))

    def replace(self, **changes: Any) -> DiTConfig:
        """A copy with `changes` applied; None values mean "keep"."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _record_config(value: Any) -> DiTConfig:
    """A record's config: each field checked where it stands (`config.depth`), then their relations."""
    if isinstance(value, DiTConfig):
        return value
    fields = fields_record(DiTConfig).model_validate(value)
    try:
        return DiTConfig(**dict(fields))
    except EdgeditError as err:
        raise ValueError(str(err).removeprefix("invalid model config: ")) from None


# A DiTConfig as a field of a record, written back as its JSON object.
ModelConfig = Annotated[fields_record(DiTConfig), PlainValidator(_record_config), PlainSerializer(DiTConfig.to_dict)]


@dataclass(frozen=True)
class Preset:
    name: str
    config: DiTConfig
    family: str  # "official", "teacher" or "nano"
    description: str


#################################################################################
#                                    Presets                                    #
#################################################################################

PRESETS: dict[str, Preset] = {}


def _register(name: str, family: str, description: str, **fields: Any) -> None:
    PRESETS[name] = Preset(name, DiTConfig(**fields), family, description)


# facebookresearch/DiT: class-conditional latent DiTs on 32x32x4 SD-VAE latents of 256x256 ImageNet.
for _size, (_depth, _width, _heads) in {
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1024, 16),
    "XL": (28, 1152, 16),
}.items():
    for _patch in (2, 4, 8):
        _register(
            f"DiT-{_size}/{_patch}",
            "official",
            "facebookresearch/DiT (ImageNet 256, latent 32x32x4, 1000 classes)",
            depth=_depth,
            hidden_size=_width,
            num_heads=_heads,
            patch_size=_patch,
        )

# EDM teachers (denoisers D(x; sigma, class)): multi-step samplers produce the offline pairs.
_register(
    "DiT-Teacher-Digits/2",
    "teacher",
    "EDM teacher for the bundled 16x16 digits (10 classes); trains on a 2-core CPU",
    input_size=16,
    in_channels=1,
    patch_size=2,
    hidden_size=192,
    depth=8,
    num_heads=6,
    num_classes=10,
    class_dropout_prob=0.0,
    learn_sigma=False,
    diffusion="edm",
)
_register(
    "DiT-Teacher-CIFAR10/2",
    "teacher",
    "EDM teacher for CIFAR-10 32x32 (10 classes), about the size of EDM's DDPM++ UNet",
    input_size=32,
    in_channels=3,
    patch_size=2,
    hidden_size=512,
    depth=12,
    num_heads=8,
    num_classes=10,
    class_dropout_prob=0.0,
    learn_sigma=False,
    diffusion="edm",
)

# DiT-Nano: one-step students (z -> x) for CIFAR-10 32x32x3, unconditional as GET's main results.
# The ladder keeps depth, width and heads balanced; Deep/Wide bracket the M size with the same
# parameter budget. Data geometry (size, channels, classes) is overridden to match the pairs.
_NANO = dict(
    input_size=32,
    in_channels=3,
    patch_size=2,
    num_classes=0,
    class_dropout_prob=0.0,
    learn_sigma=False,
    diffusion="one-step",
)
_register("DiT-Nano-XS/2", "nano", "one-step student, ~0.5M params", depth=4, hidden_size=96, num_heads=3, **_NANO)
_register("DiT-Nano-S/2", "nano", "one-step student, ~1.2M params", depth=6, hidden_size=128, num_heads=4, **_NANO)
_register("DiT-Nano-M/2", "nano", "one-step student, ~3.6M params", depth=8, hidden_size=192, num_heads=6, **_NANO)
_register(
    "DiT-Nano-M-Deep/2",
    "nano",
    "deep-narrow twin of Nano-M: 16 blocks of width 136",
    depth=16,
    hidden_size=136,
    num_heads=4,
    **_NANO,
)
_register(
    "DiT-Nano-M-Wide/2",
    "nano",
    "shallow-wide twin of Nano-M: 3 blocks of width 312",
    depth=3,
    hidden_size=312,
    num_heads=6,
    **_NANO,
)
_register("DiT-Nano-L/2", "nano", "one-step student, ~8M params", depth=10, hidden_size=256, num_heads=8, **_NANO)
_register("DiT-Nano-XL/2", "nano", "one-step student, ~20M params", depth=11, hidden_size=384, num_heads=6, **_NANO)


def _key(name: str) -> str:
    return name.strip().lower().replace("/", "-")  # DiT's folder convention: "DiT-XL-2" == "DiT-XL/2"


_BY_KEY = {_key(name): preset for name, preset in PRESETS.items()}


def get_preset(name: str) -> Preset:
    """Look a preset up by name, case-insensitively; '-' may stand for '/'."""
    preset = _BY_KEY.get(_key(name))
    if preset is None:
        close = difflib.get_close_matches(_key(name), list(_BY_KEY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(_BY_KEY[k].name for k in close)}? " if close else ""
        raise EdgeditError(f"unknown model preset '{name}'; {hint}`edgedit models` lists them all")
    return preset


def names_a_file(model: str | os.PathLike) -> bool:
    """Whether a MODEL argument names a file (by its suffix, or because it exists) rather than a
    preset: the one rule every command applies."""
    path = Path(model)
    return path.suffix in artefacts.MODEL_SUFFIXES or path.exists()


def require_model_file(model: str | os.PathLike, what: str, how: str) -> Path:
    """MODEL where only a file will do (a teacher's pairs need its weights): a preset name is refused as
    such, with `how` to make the file; a missing or irregular file is refused by what it is."""
    from edgedit.contract.fileio import regular_file

    if not names_a_file(model) and _key(str(model)) in _BY_KEY:
        raise EdgeditError(
            f"{model}: is a preset (an architecture with no trained weights); give a {what} "
            f"checkpoint or ONNX file (see `{how}`)"
        )
    return regular_file(model, f"{what} file")


def resolve_config(preset: str, **overrides: Any) -> DiTConfig:
    """The preset's config with CLI overrides (None = keep) applied and validated."""
    return get_preset(preset).config.replace(**overrides)
