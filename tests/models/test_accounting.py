import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from edgedit.config import PRESETS, get_preset
from edgedit.hardware import DEVICES, DeviceSpec
from edgedit.models import accounting
from edgedit.models.dit import DiT
from tests.conftest import TINY_CONFIGS, example_inputs

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
    quantized = sum(torch.Size(s).numel() for n, s in shapes.items() if accounting.is_quantized_weight(n))
    assert weights["fp32"] == 4 * params and weights["fp16"] == 2 * params
    assert weights["int8"] == 2 * params - quantized
    assert quantized == cfg.depth * (3 + 1 + 2 * cfg.mlp_ratio) * cfg.hidden_size**2


def test_roofline_reduces_to_compute_time_with_unlimited_bandwidth():
    cfg = get_preset("DiT-B/2").config
    compute_only = DeviceSpec("ideal", "infinite bandwidth", int8_sparse_tops=40.0, bandwidth_gbs=1e15)
    expected_ms = 2 * accounting.count_macs(cfg) / compute_only.fp16_flops_per_s * 1e3
    assert accounting.roofline_ms(cfg, compute_only, "fp16") == pytest.approx(expected_ms, rel=1e-6)


def test_roofline_reduces_to_traffic_time_with_unlimited_compute():
    cfg = get_preset("DiT-Nano-S/2").config
    memory_only = DeviceSpec("ideal", "infinite compute", int8_sparse_tops=1e12, bandwidth_gbs=100.0)
    ops = accounting.layer_ops(cfg)
    traffic = sum(op.repeat * 2 * (op.weights + op.reads + op.writes) for op in ops)  # fp16: 2 bytes
    assert accounting.roofline_ms(cfg, memory_only, "fp16") == pytest.approx(traffic / 100e9 * 1e3, rel=1e-9)


def test_roofline_orders_devices_and_precisions():
    for name in ("DiT-XL/2", "DiT-Nano-M/2"):
        cfg = get_preset(name).config
        nano, super_ = DEVICES["orin-nano"], DEVICES["orin-nano-super"]
        assert accounting.roofline_ms(cfg, super_, "fp16") < accounting.roofline_ms(cfg, nano, "fp16")
        assert accounting.roofline_ms(cfg, nano, "int8") < accounting.roofline_ms(cfg, nano, "fp16")
    deeper = dataclasses.replace(get_preset("DiT-Nano-M/2").config, depth=16)
    assert accounting.roofline_ms(deeper, nano, "fp16") > accounting.roofline_ms(get_preset("DiT-Nano-M/2").config, nano, "fp16")
    with pytest.raises(ValueError):
        accounting.roofline_ms(deeper, nano, "fp8")


@pytest.mark.parametrize("name, size, winner", [("DiT-XL/2", 32, "mlp"), ("DiT-S/2", 64, "attention")])
def test_activation_peak_is_the_softmax_or_the_gelu(name, size, winner):
    cfg = get_preset(name).config.replace(input_size=size)
    T, D, H, R = cfg.num_patches, cfg.hidden_size, cfg.num_heads, cfg.mlp_hidden
    softmax = 2 * H * T * T + T * D  # scores in, probabilities out, residual stream
    gelu = 2 * T * R + T * D
    expected = softmax if winner == "attention" else gelu
    assert max(softmax, gelu) == expected
    assert accounting.activation_peak_bytes(cfg, 2) == 2 * expected


def test_describe_has_the_documented_json_keys():
    report = accounting.describe(get_preset("DiT-Nano-S/2").config, "DiT-Nano-S/2")
    for key in ("name", "params", "macs", "orin_nano_fp16_ms", "orin_nano_int8_ms",
                "orin_nano_super_fp16_ms", "orin_nano_super_int8_ms", "weights_bytes", "activation_peak_bytes"):
        assert key in report
    assert "estimate" in report["latency_note"]
