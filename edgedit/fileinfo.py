"""`edgedit info`: describe a file edgedit made or reads. Torch-free."""

from __future__ import annotations

import os
from pathlib import Path

from edgedit.errors import EdgeditError
from edgedit.fileio import sha256_file
from edgedit.models import accounting


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"  # 8-byte header length, then the JSON header


def describe_checkpoint(path: Path) -> dict:
    from edgedit.checkpoint import read_checkpoint

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
        "provenance": info.provenance,
    }


def describe(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise EdgeditError(f"{path}: no such file")
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        return describe_checkpoint(path)
    raise EdgeditError(f"{path}: unrecognised file type; `edgedit info` describes .safetensors checkpoints")
