"""Model checkpoints: `.safetensors` files whose metadata carries the model config, the provenance
and a content hash of the tensors.

Nothing is ever unpickled. Reading a checkpoint (`read_checkpoint`) validates its header (config,
provenance, tensor names and shapes against the config) and, unless verification is switched off
(`contract.fileio.verification(False)`, the CLI's --no-verify), the tensors' bytes against the hash, with
safetensors and numpy and without torch; checkpoints are workstation files (the device image has no
safetensors: the device gets ONNX files and engines). `save_model` / `load_model` move weights in and
out of a torch `DiT`. Files of format /1 (before the hash) are read unverified, with a warning.

A checkpoint also names the noise scheme its samples are drawn with (`edgedit.noise`), so that
its seeds keep their images, and its recorded evaluation its numbers, when the default changes;
files that name none were made with the first scheme (NOISE_UNRECORDED).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from edgedit import __version__
from edgedit.contract.config import DiTConfig
from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import regular_file, verifying
from edgedit.contract.schedules import NOISE_SCHEMES, NOISE_UNRECORDED
from edgedit.contract.schema import OpenRecord, loads, parse
from edgedit.contract.staging import atomic_output
from edgedit.cost.accounting import parameter_shapes

if TYPE_CHECKING:
    from edgedit.models.dit import DiT

FORMAT = "edgedit.dit-checkpoint/2"
UNHASHED_FORMAT = "edgedit.dit-checkpoint/1"  # older files: no content hash
META_FORMAT = "edgedit.format"
META_VERSION = "edgedit.version"
META_CONFIG = "edgedit.config"
META_PROVENANCE = "edgedit.provenance"
META_TENSORS_SHA256 = "edgedit.tensors_sha256"
META_NOISE = "edgedit.noise"
log = logging.getLogger("edgedit")


def tensors_sha256(tensors: Iterable[tuple[str, Any]]) -> str:
    """sha256 over (name, dtype, shape, little-endian bytes) of numpy arrays, in name order: the
    same value whatever the file layout, so it can be written into the header it covers."""
    digest = hashlib.sha256()
    for name, array in sorted(tensors, key=lambda item: item[0]):
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        digest.update(f"{name}\0{array.dtype.str}\0{list(array.shape)}\0".encode())
        digest.update(array.data)
    return digest.hexdigest()


class Provenance(OpenRecord):
    """Where a checkpoint came from; any further keys are kept. Typed where edgedit reads them."""

    created: str | None = None
    method: str | None = None
    steps: int | None = Field(default=None, ge=0)
    data: str | None = None
    eval: dict[str, Any] | None = None  # `edgedit eval --save`: metric -> value
    eval_seeds: list[int] | None = Field(default=None, min_length=2, max_length=2)  # first, last


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

    @property
    def noise(self) -> str:
        """The seed -> noise scheme this model's samples (and recorded evaluations) use."""
        return self.metadata.get(META_NOISE, NOISE_UNRECORDED)


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
        for n in expected
        if n in actual and tuple(actual[n]) != expected[n]
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
    path = regular_file(path, "checkpoint file")
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {name: (f.get_slice(name).get_dtype(), tuple(f.get_slice(name).get_shape())) for name in f.keys()}  # noqa: SIM118  (a safetensors handle, not a dict)
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
    provenance = parse(
        Provenance,
        loads(metadata.get(META_PROVENANCE, "{}"), path, f"'{META_PROVENANCE}' metadata"),
        path,
        f"'{META_PROVENANCE}' metadata",
    ).model_dump(exclude_unset=True)
    check_tensor_shapes(parameter_shapes(config), {n: s for n, (_, s) in tensors.items()}, str(path))
    if metadata.get(META_NOISE, NOISE_UNRECORDED) not in NOISE_SCHEMES:
        raise EdgeditError(
            f"{path}: metadata '{META_NOISE}' is {metadata[META_NOISE][:40]!r}, not one of "
            f"{', '.join(NOISE_SCHEMES)}; the file was altered: restore it from a good copy"
        )
    info = CheckpointInfo(path, config, provenance, tensors, metadata)
    if verifying():
        verify_tensors(info)
    return info


def verify_tensors(info: CheckpointInfo) -> None:
    """Refuse a checkpoint whose tensor bytes are not what its header's hash says (bit rot, a bad copy)."""
    fmt, recorded = info.metadata.get(META_FORMAT), info.metadata.get(META_TENSORS_SHA256)
    if fmt == UNHASHED_FORMAT and recorded is None:
        log.warning(
            "%s: written before checkpoints carried a content hash; its tensors are not verified", info.path.name
        )
        return
    if fmt != FORMAT or recorded is None:
        raise EdgeditError(
            f"{info.path}: metadata '{META_FORMAT}' is {fmt!r} with no '{META_TENSORS_SHA256}'; "
            f"not an edgedit checkpoint of format {FORMAT} (`edgedit --no-verify ...` reads it anyway)"
        )
    safetensors = require("safetensors", extra="train")
    with safetensors.safe_open(str(info.path), framework="numpy") as f:
        actual = tensors_sha256((name, f.get_tensor(name)) for name in f.keys())  # noqa: SIM118
    if actual != recorded:
        raise EdgeditError(
            f"{info.path}: its tensors do not match the content hash in its header (the file is "
            "damaged or was altered); restore it from a good copy, or read it anyway with "
            "`edgedit --no-verify ...`"
        )


def save_model(model: DiT, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write `model`'s weights, config and provenance atomically to a .safetensors file."""
    save_file = require("safetensors.torch", extra="train").save_file
    provenance = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **(provenance or {})}
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    metadata = {
        META_FORMAT: FORMAT,
        META_VERSION: __version__,
        META_CONFIG: model.config.to_json(),
        META_PROVENANCE: json.dumps(provenance, sort_keys=True),
        META_TENSORS_SHA256: tensors_sha256((name, t.numpy()) for name, t in state.items()),
        META_NOISE: model.noise,
    }
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
    metadata = {
        **info.metadata,
        META_FORMAT: FORMAT,
        META_TENSORS_SHA256: tensors_sha256(tensors.items()),
        META_PROVENANCE: json.dumps({**info.provenance, **provenance}, sort_keys=True),
    }
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
    model.noise = info.noise  # its samples keep the file's images
    return model.to(device).eval(), info
