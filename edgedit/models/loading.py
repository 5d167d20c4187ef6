"""MODEL arguments: a checkpoint file, or a preset name (random weights, for latency work)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgedit.contract.config import names_a_file, resolve_config
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import sha256_file

log = logging.getLogger("edgedit")


def random_weights(model, seed: int = 0):
    """Random weights at trained-like scales, so that a preset computes something non-trivial (a
    fresh adaLN-Zero DiT outputs exactly zero): weight matrices N(0, 1/fan_in) keep activations
    near unit variance, biases N(0, 0.02^2), learned modulation vectors N(0, 0.5^2). The adaLN-Zero
    gates are open, so every block contributes, as in a trained network."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue  # the fixed sin-cos position embedding
            if name.endswith("modulation"):
                std = 0.5
            elif param.ndim >= 2:
                std = param[0].numel() ** -0.5  # 1 / sqrt(fan_in)
            else:
                std = 0.02
            param.copy_(torch.randn(param.shape, generator=gen) * std)
    return model


def load_model_or_preset(spec: str, seed: int = 0, quiet: bool = False, **overrides: Any):
    """(DiT in eval mode, source description) for a checkpoint path or a preset name."""
    from edgedit.models.checkpoint import load_model
    from edgedit.models.dit import DiT

    path = Path(spec)
    if names_a_file(path):
        if any(v is not None for v in overrides.values()):
            raise EdgeditError(f"{spec}: model overrides apply to presets, not to a checkpoint (its config is fixed)")
        model, info = load_model(path)
        source = {"checkpoint": path.name, "sha256": sha256_file(path), "weights": "trained"}
        fid = (info.provenance.get("eval") or {}).get("FID")  # `eval --save`'s: exports and benches carry it on
        return model, {**source, **({"fid": fid} if isinstance(fid, (int, float)) else {})}
    cfg = resolve_config(spec, **overrides)
    model = random_weights(DiT(cfg), seed).eval()
    if not quiet:
        log.warning(f"{spec} is a preset: random weights (seed {seed}), good for latency work only")
    return model, {
        "preset": spec,
        "config_overrides": {k: v for k, v in overrides.items() if v is not None},
        "weights": "random",
        "seed": seed,
    }
