"""Import an official facebookresearch/DiT checkpoint (`DiT-XL-2-256x256.pt` ...) into a safetensors checkpoint.

Official files are plain state_dicts of tensors and load with `torch.load(weights_only=True)`;
anything holding other Python objects (a train.py checkpoint with its argparse args) is refused
rather than unpickled. The weights and code of DiT are licensed CC-BY-NC 4.0, and the converted
file records that in its provenance.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from edgedit.contract.config import DiTConfig
from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import sha256_file
from edgedit.cost.accounting import parameter_shapes
from edgedit.models.checkpoint import CheckpointInfo, check_tensor_shapes, read_checkpoint, save_model
from edgedit.models.torch_files import load_tensors

VAE_DOWNSAMPLE = 8  # DiT works on SD-VAE latents: a 256x256 image is a 32x32 latent


def official_input_size(image_size: int) -> int:
    if image_size % VAE_DOWNSAMPLE:
        raise EdgeditError(f"`image_size` {image_size} is not a multiple of {VAE_DOWNSAMPLE} (the VAE's downsampling)")
    return image_size // VAE_DOWNSAMPLE


def load_official_state_dict(path: str | os.PathLike) -> dict:
    """Tensor-only loading of an official (or train.py 'ema') state_dict."""
    torch = require("torch", extra="train")
    obj = load_tensors(
        path,
        "PyTorch checkpoint",
        trusted_hint="if you trust it, re-save its weights alone: torch.save(torch.load(f)['ema'], 'weights.pt')",
    )
    if isinstance(obj, dict) and isinstance(obj.get("ema"), dict):
        obj = obj["ema"]  # train.py layout {model, ema, opt, args}: DiT samples with the EMA weights
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EdgeditError(f"{path}: expected a state_dict (a mapping of names to tensors), found {type(obj).__name__}")
    return obj


def _shape_hints(state: dict, cfg: DiTConfig) -> str:
    """Point at the flag that explains the commonest mismatches."""
    hints = []
    pos = state.get("pos_embed")
    if pos is not None and pos.ndim == 3 and pos.shape[1] != cfg.num_patches:
        grid = math.isqrt(pos.shape[1])
        hints.append(
            f"pos_embed has {pos.shape[1]} tokens: an image size of {grid * cfg.patch_size * VAE_DOWNSAMPLE} "
            f"(`image_size`) for patch {cfg.patch_size}"
        )
    table = state.get("y_embedder.embedding_table.weight")
    if table is not None and table.shape[0] != cfg.label_rows:
        hints.append(f"the label table has {table.shape[0]} rows: `num_classes` {table.shape[0] - 1} with the null row")
    return (" (hint: " + "; ".join(hints) + ")") if hints else ""


def convert_official_dit(src: str | os.PathLike, cfg: DiTConfig, out: str | os.PathLike) -> CheckpointInfo:
    from edgedit.models.dit import DiT

    state = load_official_state_dict(src)
    check_tensor_shapes(
        parameter_shapes(cfg), {k: tuple(v.shape) for k, v in state.items()}, str(src), _shape_hints(state, cfg)
    )
    model = DiT(cfg)
    model.load_state_dict(state, strict=True)
    save_model(
        model,
        out,
        provenance={
            "source": "facebookresearch/DiT official checkpoint",
            "file": Path(src).name,
            "sha256": sha256_file(src),
            "license": "CC-BY-NC-4.0 (DiT weights: non-commercial use only)",
        },
    )
    return read_checkpoint(out)
