import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from edgedit.contract.config import PRESETS, get_preset
from edgedit.contract.quantization import is_int8_weight
from edgedit.cost import accounting
from edgedit.models.dit import DiT
from tests.helpers import TINY_CONFIGS, example_inputs

ALL_CONFIGS = {**{n: p.config for n, p in PRESETS.items()}, **TINY_CONFIGS}


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_parameter_shapes_are_the_modules_state_dict_in_order(name):
    cfg = ALL_CONFIGS[name]
    with torch.device("meta"):
        model = DiT(cfg)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == list(accounting.parameter_shapes(cfg).items())
    assert accounting.count_params(cfg) == model.num_params()


def counted_macs(cfg, batch, device="cpu"):
    """MACs per image of a real forward pass, as torch's FlopCounterMode counts them (FLOPs = 2 MACs)."""
    with torch.device(device):
        model = DiT(cfg).eval()
    x, t, y = (v.to(device) if v is not None else None for v in example_inputs(cfg, batch=batch))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x, t, y)
    return counter.get_total_flops() / 2 / batch


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_macs_formula_matches_a_counted_forward_of_tiny_models(name):
    cfg = TINY_CONFIGS[name]
    assert accounting.count_macs(cfg) == counted_macs(cfg, batch=2)


@pytest.mark.parametrize("name", ["DiT-S/2", "DiT-XL/8", "DiT-Teacher-Digits/2", "DiT-Nano-XS/2", "DiT-Nano-M-Wide/2"])
def test_macs_formula_matches_a_counted_forward_of_presets(name):
    cfg = get_preset(name).config
    assert accounting.count_macs(cfg) == counted_macs(cfg, batch=2, device="meta")


def test_dit_xl2_macs_agree_with_the_paper():
    # DiT paper (Peebles & Xie 2023), Table 4: DiT-XL/2 costs 118.6 Gflops, counted as multiply-adds.
    assert round(accounting.count_macs(get_preset("DiT-XL/2").config) / 1e9, 1) == 118.6


def test_macs_breakdown_adds_up_and_has_no_adaln_without_conditioning():
    cfg = get_preset("DiT-Nano-S/2").config
    breakdown = accounting.macs_breakdown(cfg)
    assert sum(breakdown.values()) == accounting.count_macs(cfg)
    assert "adaln" not in breakdown and "timestep_embed" not in breakdown
    assert "adaln" in accounting.macs_breakdown(get_preset("DiT-S/2").config)


def test_weight_bytes_per_precision():
    cfg = get_preset("DiT-Nano-M/2").config
    params = accounting.count_params(cfg)
    weights = accounting.weight_bytes(cfg)
    shapes = accounting.parameter_shapes(cfg)
    quantized = sum(torch.Size(s).numel() for n, s in shapes.items() if is_int8_weight(n))
    assert weights["fp32"] == 4 * params and weights["fp16"] == 2 * params
    assert weights["int8"] == 2 * params - quantized
    assert quantized == cfg.depth * (3 + 1 + 2 * cfg.mlp_ratio) * cfg.hidden_size**2


def test_activation_peak_is_the_largest_kernel_and_fused_attention_never_writes_its_scores():
    fused = get_preset("DiT-S/2").config.replace(input_size=64)  # head size 64: one fused MHA kernel
    T, D, R = fused.num_patches, fused.hidden_size, fused.mlp_hidden
    fc2 = (T * R + T * D + D) + T * D + T * D  # reads (input, residual, gate), writes, residual stream
    assert accounting.activation_peak_bytes(fused, 2) == 2 * fc2
    unfused = fused.replace(hidden_size=80, num_heads=4)  # head size 20: Q K^T, softmax, attn V
    T, D, H = unfused.num_patches, unfused.hidden_size, unfused.num_heads
    softmax = 2 * H * T * T + T * D  # scores in, probabilities out, residual stream
    assert accounting.activation_peak_bytes(unfused, 2) == 2 * softmax
