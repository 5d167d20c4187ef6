"""Model checkpoints: `.safetensors` files whose metadata carries the model config and provenance.

Nothing is ever unpickled. Reading the header (`read_checkpoint`) and validating tensor names
and shapes against the config need neither torch nor the tensor data, so `edgedit info` works
on the device side; `save_model` / `load_model` move weights in and out of a torch `DiT`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedit import __version__
from edgedit.contract.config import DiTConfig
from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import atomic_output
from edgedit.cost.accounting import parameter_shapes

if TYPE_CHECKING:
    from edgedit.models.dit import DiT

FORMAT = "edgedit.dit-checkpoint/1"
META_FORMAT = "edgedit.format"
META_VERSION = "edgedit.version"
META_CONFIG = "edgedit.config"
META_PROVENANCE = "edgedit.provenance"


@dataclass
class CheckpointInfo:
    path: Path
    config: DiTConfig
    provenance: dict[str, Any]
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        total = 0
        for _, shape in self.tensors.values():
            n = 1
            for s in shape:
                n *= s
            total += n
        return total


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def check_tensor_shapes(
    expected: dict[str, tuple[int, ...]], actual: dict[str, tuple[int, ...]], where: str, hint: str = ""
) -> None:
    """Raise one line naming missing, unexpected and mis-shaped tensors, if there are any."""
    missing = [n for n in expected if n not in actual]
    unexpected = [n for n in actual if n not in expected]
    misshaped = [
        f"{n} {list(actual[n])} != {list(expected[n])}"
        for n in expected if n in actual and tuple(actual[n]) != expected[n]
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensor(s): {_names(unexpected)}")
    if misshaped:
        problems.append(f"{len(misshaped)} tensor(s) of the wrong shape (file != config): {_names(misshaped, 2)}")
    if problems:
        raise EdgeditError(f"{where}: does not match its model config: {'; '.join(problems)}{hint}")


def read_checkpoint(path: str | os.PathLike) -> CheckpointInfo:
    """Read and validate a checkpoint's header (config, provenance, tensor names and shapes)."""
    safetensors = require("safetensors", extra="train")
    path = Path(path)
    if not path.is_file():
        raise EdgeditError(f"{path}: no such checkpoint file")
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {name: (f.get_slice(name).get_dtype(), tuple(f.get_slice(name).get_shape()))
                       for name in f.keys()}  # noqa: SIM118  (a safetensors handle, not a dict)
    except Exception as err:  # SafetensorError on bad or truncated files
        raise EdgeditError(
            f"{path}: not a readable safetensors file ({err}); it may be truncated or of another format. "
            "edgedit checkpoints are .safetensors files; import official DiT weights with `edgedit convert-dit`"
        ) from err
    if META_CONFIG not in metadata:
        raise EdgeditError(
            f"{path}: a safetensors file without an edgedit model config (metadata key '{META_CONFIG}'); "
            "it was not written by edgedit. Official DiT weights are imported with `edgedit convert-dit`"
        )
    try:
        config = DiTConfig.from_json(metadata[META_CONFIG])
    except EdgeditError as err:
        raise EdgeditError(f"{path}: {err}") from err
    try:
        provenance = json.loads(metadata.get(META_PROVENANCE, "{}"))
    except json.JSONDecodeError as err:
        raise EdgeditError(f"{path}: metadata '{META_PROVENANCE}' is not JSON ({err})") from err
    check_tensor_shapes(parameter_shapes(config), {n: s for n, (_, s) in tensors.items()}, str(path))
    return CheckpointInfo(path, config, provenance, tensors, metadata)


def save_model(model: DiT, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write `model`'s weights, config and provenance atomically to a .safetensors file."""
    save_file = require("safetensors.torch", extra="train").save_file
    provenance = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **(provenance or {})}
    metadata = {
        META_FORMAT: FORMAT,
        META_VERSION: __version__,
        META_CONFIG: model.config.to_json(),
        META_PROVENANCE: json.dumps(provenance, sort_keys=True),
    }
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    path = Path(path)
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def copy_with_provenance(source: str | os.PathLike, dest: str | os.PathLike, **provenance: Any) -> Path:
    """Copy a checkpoint's tensors bit for bit to `dest`, its provenance extended with `provenance` (no torch)."""
    safetensors_numpy = require("safetensors.numpy", extra="train")
    info = read_checkpoint(source)
    with require("safetensors", extra="train").safe_open(str(info.path), framework="numpy") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118  (a safetensors handle)
    metadata = {**info.metadata, META_PROVENANCE: json.dumps({**info.provenance, **provenance}, sort_keys=True)}
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        safetensors_numpy.save_file(tensors, str(tmp), metadata=metadata)
    return dest


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[DiT, CheckpointInfo]:
    """Rebuild the DiT described by a checkpoint and load its weights (strictly)."""
    info = read_checkpoint(path)
    load_file = require("safetensors.torch", extra="train").load_file
    from edgedit.models.dit import DiT

    model = DiT(info.config)
    model.load_state_dict(load_file(str(info.path), device="cpu"), strict=True)
    return model.to(device).eval(), info
