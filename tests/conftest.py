"""Shared fixtures. Tiny models stand in for real ones; their weights are perturbed because
adaLN-Zero makes a freshly initialised DiT output exactly zero, which would hide any bug."""

from __future__ import annotations

import pytest

from edgedit.config import DiTConfig

# Small configs covering every structural variant of the network.
TINY_CONFIGS = {
    "denoiser-cfg": DiTConfig(input_size=8, in_channels=4, patch_size=2, hidden_size=32, depth=2, num_heads=4,
                              num_classes=5, class_dropout_prob=0.1, learn_sigma=True),
    "denoiser-uncond": DiTConfig(input_size=8, in_channels=3, patch_size=4, hidden_size=24, depth=3, num_heads=2,
                                 num_classes=0, class_dropout_prob=0.0, learn_sigma=False),
    "onestep-cond": DiTConfig(input_size=16, in_channels=1, patch_size=2, hidden_size=32, depth=2, num_heads=2,
                              num_classes=10, class_dropout_prob=0.0, learn_sigma=False, one_step=True),
    "onestep-uncond": DiTConfig(input_size=8, in_channels=3, patch_size=2, hidden_size=16, depth=3, num_heads=4,
                                mlp_ratio=2.5, num_classes=0, class_dropout_prob=0.0, learn_sigma=False, one_step=True),
}


def perturb(model, seed: int = 0, std: float = 0.1):
    """Give every trainable parameter random values (pos_embed stays the fixed sin-cos table)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    return model


def example_inputs(cfg: DiTConfig, batch: int = 3, seed: int = 1):
    """(x, t, y) for `DiT.forward`, with None where the config takes no such input."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
    t = None if cfg.one_step else torch.rand(batch, generator=gen) * 999
    y = torch.randint(0, cfg.num_classes, (batch,), generator=gen) if cfg.class_conditional else None
    return x, t, y


@pytest.fixture(params=sorted(TINY_CONFIGS))
def tiny_config(request) -> DiTConfig:
    return TINY_CONFIGS[request.param]
