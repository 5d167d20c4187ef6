import json

import pytest

from edgedit.contract.config import PRESETS, DiTConfig, get_preset, resolve_config
from edgedit.contract.errors import EdgeditError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name):
    cfg = PRESETS[name].config
    assert DiTConfig.from_json(cfg.to_json()) == cfg
    assert json.loads(cfg.to_json())["depth"] == cfg.depth


def test_from_dict_refuses_unknown_fields():
    data = DiTConfig().to_dict() | {"dropout": 0.1}
    with pytest.raises(EdgeditError, match="unknown field.*dropout"):
        DiTConfig.from_dict(data)


def test_from_json_refuses_non_json():
    with pytest.raises(EdgeditError, match="not JSON"):
        DiTConfig.from_json("{depth: 3")


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(hidden_size=132, num_heads=5), "not divisible by 5 heads"),
        (dict(hidden_size=30, num_heads=3), "multiple of 4"),
        (dict(input_size=30, patch_size=4), "not divisible by patch size"),
        (dict(depth=0), r"\(`depth`\): field 'depth': input should be greater than or equal to 1 \(got 0\)"),
        (dict(depth=True), r"field 'depth': input should be a valid integer \(got True\)"),
        (dict(depth=10**6), r"field 'depth': input should be less than or equal to 1024"),
        (dict(hidden_size=10**6), r"\(`hidden_size`\): field 'hidden_size': .* less than or equal to 16384"),
        (dict(mlp_ratio="4"), r"field 'mlp_ratio': input should be a valid number \(got '4'\)"),
        (dict(mlp_ratio=float("inf")), r"field 'mlp_ratio': input should be a finite number"),
        (dict(learn_sigma=1), r"field 'learn_sigma': input should be a valid boolean"),
        (dict(class_dropout_prob=1.0), "field 'class_dropout_prob': input should be less than 1"),
        (dict(diffusion="one-step", learn_sigma=True), "learn_sigma .* only exists for ddpm"),
        (dict(diffusion="flow"), "field 'diffusion': input should be 'ddpm', 'edm' or 'one-step'"),
        (dict(mlp_ratio=0.0), "field 'mlp_ratio': input should be greater than 0"),
        (dict(mlp_ratio=0.01, hidden_size=32, num_heads=4), "leaves no MLP hidden units"),
    ],
)
def test_invalid_configs_are_refused_with_the_reason(changes, message):
    with pytest.raises(EdgeditError, match=message):
        DiTConfig(**changes)


def test_preset_lookup_is_forgiving_about_case_and_separator():
    assert get_preset("dit-xl-2") is get_preset("DiT-XL/2")
    assert get_preset(" DIT-NANO-S/2 ").name == "DiT-Nano-S/2"


def test_unknown_preset_suggests_close_names():
    with pytest.raises(EdgeditError, match="did you mean DiT-Nano-S/2"):
        get_preset("DiT-Nano-S2x")


def test_overrides_apply_on_top_of_the_preset_and_none_keeps():
    cfg = resolve_config("DiT-Nano-S/2", depth=9, hidden_size=None)
    assert cfg.depth == 9 and cfg.hidden_size == get_preset("DiT-Nano-S/2").config.hidden_size


def test_nano_family_spans_half_a_million_to_twenty_million_params_and_shapes():
    from edgedit.cost.accounting import count_params

    nano = {n: p.config for n, p in PRESETS.items() if p.family == "nano"}
    sizes = sorted(count_params(c) for c in nano.values())
    assert len(nano) >= 5
    assert 0.4e6 <= sizes[0] <= 0.6e6 and 18e6 <= sizes[-1] <= 22e6
    # Deep-narrow and shallow-wide twins of Nano-M within 1% of its size.
    m, deep, wide = (nano[f"DiT-Nano-M{s}/2"] for s in ("", "-Deep", "-Wide"))
    for twin in (deep, wide):
        assert abs(count_params(twin) - count_params(m)) / count_params(m) < 0.01
    assert deep.depth > m.depth > wide.depth and deep.hidden_size < m.hidden_size < wide.hidden_size
