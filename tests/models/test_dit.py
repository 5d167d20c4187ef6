import math

import pytest
import torch
import torch.nn.functional as F

from edgedit.contract.config import DiTConfig, get_preset
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from tests.helpers import TINY_CONFIGS, example_inputs


def official_checkpoint_layout(D, depth, C=4, Co=8, p=2, T=256, classes=1000):
    """Key names and shapes of an official DiT checkpoint (facebookresearch/DiT, DiT-XL-2-256x256.pt),
    written out from the published layout rather than derived from edgedit's code."""
    layout = {
        "pos_embed": (1, T, D),
        "x_embedder.proj.weight": (D, C, p, p),
        "x_embedder.proj.bias": (D,),
        "t_embedder.mlp.0.weight": (D, 256),
        "t_embedder.mlp.0.bias": (D,),
        "t_embedder.mlp.2.weight": (D, D),
        "t_embedder.mlp.2.bias": (D,),
        "y_embedder.embedding_table.weight": (classes + 1, D),
        "final_layer.linear.weight": (p * p * Co, D),
        "final_layer.linear.bias": (p * p * Co,),
        "final_layer.adaLN_modulation.1.weight": (2 * D, D),
        "final_layer.adaLN_modulation.1.bias": (2 * D,),
    }
    for i in range(depth):
        layout |= {
            f"blocks.{i}.attn.qkv.weight": (3 * D, D),
            f"blocks.{i}.attn.qkv.bias": (3 * D,),
            f"blocks.{i}.attn.proj.weight": (D, D),
            f"blocks.{i}.attn.proj.bias": (D,),
            f"blocks.{i}.mlp.fc1.weight": (4 * D, D),
            f"blocks.{i}.mlp.fc1.bias": (4 * D,),
            f"blocks.{i}.mlp.fc2.weight": (D, 4 * D),
            f"blocks.{i}.mlp.fc2.bias": (D,),
            f"blocks.{i}.adaLN_modulation.1.weight": (6 * D, D),
            f"blocks.{i}.adaLN_modulation.1.bias": (6 * D,),
        }
    return layout


def meta_model(cfg: DiTConfig) -> DiT:
    with torch.device("meta"):  # shapes only, no memory: XL/2 is 675M parameters
        return DiT(cfg)


@pytest.mark.parametrize("name, params", [("DiT-XL/2", 675_129_632), ("DiT-S/2", 32_963_360), ("DiT-B/4", 130_475_648)])
def test_official_parameter_counts(name, params):
    assert meta_model(get_preset(name).config).num_params() == params


def test_state_dict_is_laid_out_like_an_official_checkpoint():
    model = meta_model(get_preset("DiT-XL/2").config)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_checkpoint_layout(D=1152, depth=28)


def test_official_layout_loads_strictly_and_the_outputs_follow_the_weights():
    cfg = get_preset("DiT-S/8").config.replace(depth=2, input_size=16)
    layout = official_checkpoint_layout(D=384, depth=2, p=8, T=4)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) * 0.05 for k, shape in layout.items()}
    state["pos_embed"] = DiT(cfg).pos_embed.detach().clone()
    model = DiT(cfg).eval()
    model.load_state_dict(state, strict=True)
    x, t, y = example_inputs(cfg, batch=2)
    # float32 (eps 1.2e-7), up to 1536-term dot products through 2 blocks, |out| < 3.7: 1.9e-6 measured, <= 0.14
    # of atol 1e-5 + rtol 1e-4 on every ATen path
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y), reference_forward(state, cfg, x, t, y), atol=1e-5, rtol=1e-4)


#################################################################################
#   An independent reference: DiT written as plain tensor algebra from the paper #
#################################################################################


def reference_pos_embed(D, g):
    """Token (row r, col c): first D/2 channels encode the column, last D/2 the row; each half is
    [sin(pos * w_i), cos(pos * w_i)] with w_i = 10000^(-i / (D/4))."""
    w = 10000.0 ** (-torch.arange(D // 4, dtype=torch.float64) / (D / 4))
    rows = []
    for r in range(g):
        for c in range(g):
            rows.append(torch.cat([torch.sin(c * w), torch.cos(c * w), torch.sin(r * w), torch.cos(r * w)]))
    return torch.stack(rows).float()  # (g*g, D)


def reference_forward(sd, cfg, x, t, y):
    N, _, S, _ = x.shape
    p, g, D, H = cfg.patch_size, cfg.grid_size, cfg.hidden_size, cfg.num_heads
    lin = lambda h, name: h @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]  # noqa: E731
    # Patchify: token (r, c) holds the p x p x C pixels below it, flattened channel-major like the conv weight.
    patches = torch.stack(
        [x[:, :, r * p : (r + 1) * p, c * p : (c + 1) * p].reshape(N, -1) for r in range(g) for c in range(g)], dim=1
    )  # (N, T, C*p*p)
    h = patches @ sd["x_embedder.proj.weight"].reshape(D, -1).T + sd["x_embedder.proj.bias"]
    # both float64 sin/cos rounded once to float32 (<= 6e-8 on [-1, 1]); 1e-6 allows a last-ulp libm difference
    assert torch.allclose(sd["pos_embed"][0], reference_pos_embed(D, g), atol=1e-6)
    h = h + reference_pos_embed(D, g)
    cond = None
    if not cfg.one_step:
        freqs = torch.exp(-math.log(10000) * torch.arange(128) / 128)
        feats = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)
        cond = lin(F.silu(lin(feats, "t_embedder.mlp.0")), "t_embedder.mlp.2")
    if cfg.class_conditional:
        emb = sd["y_embedder.embedding_table.weight"][y]
        cond = emb if cond is None else cond + emb

    def modulation(prefix, n):
        if cond is None:
            return sd[f"{prefix}.modulation"].expand(N, -1).chunk(n, dim=1)
        return lin(F.silu(cond), f"{prefix}.adaLN_modulation.1").chunk(n, dim=1)

    norm = lambda v: F.layer_norm(v, (D,), eps=1e-6)  # noqa: E731
    for i in range(cfg.depth):
        b = f"blocks.{i}"
        s1, sc1, g1, s2, sc2, g2 = modulation(b, 6)
        a = norm(h) * (1 + sc1[:, None]) + s1[:, None]
        qkv = lin(a, f"{b}.attn.qkv")
        q, k, v = (qkv[..., j * D : (j + 1) * D].reshape(N, -1, H, D // H) for j in range(3))
        w = torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(D // H)
        att = torch.einsum("nhqk,nkhd->nqhd", w.softmax(-1), v).reshape(N, -1, D)
        h = h + g1[:, None] * lin(att, f"{b}.attn.proj")
        m = norm(h) * (1 + sc2[:, None]) + s2[:, None]
        h = h + g2[:, None] * lin(F.gelu(lin(m, f"{b}.mlp.fc1"), approximate="tanh"), f"{b}.mlp.fc2")
    shift, scale = modulation("final_layer", 2)
    out = lin(norm(h) * (1 + scale[:, None]) + shift[:, None], "final_layer.linear")  # (N, T, p*p*Co)
    Co = cfg.out_channels
    img = torch.zeros(N, Co, S, S)
    for r in range(g):
        for c in range(g):
            # within a token: channel fastest, then patch column, then patch row
            img[:, :, r * p : (r + 1) * p, c * p : (c + 1) * p] = (
                out[:, r * g + c].reshape(N, p, p, Co).permute(0, 3, 1, 2)
            )
    return img


def test_forward_matches_the_reference_algebra(tiny_config):
    model = random_weights(DiT(tiny_config)).eval()
    x, t, y = example_inputs(tiny_config)
    with torch.no_grad():
        out = model(x, t, y)
        ref = reference_forward(model.state_dict(), tiny_config, x, t, y)
    assert out.shape == (3, tiny_config.out_channels, tiny_config.input_size, tiny_config.input_size)
    assert out.abs().max() > 0.1  # a non-trivial output, not the adaLN-Zero zero
    # float32 (eps 1.2e-7), up to 256-term dot products through <= 3 blocks, |out| < 5: <= 1.2e-6 measured on
    # the AVX-512, AVX2 and default paths, <= 0.05 of atol 1e-5 + rtol 1e-4
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


#################################################################################
#                          Behaviour of the extensions                          #
#################################################################################


def test_fresh_model_is_adaln_zero_output_exactly_zero(tiny_config):
    model = DiT(tiny_config).eval()
    x, t, y = example_inputs(tiny_config)
    with torch.no_grad():
        out, feats = model(x, t, y, return_features=True)
    assert torch.count_nonzero(out) == 0
    embedded = model.x_embedder(x) + model.pos_embed  # the forward's own first line: the same operations
    for f in feats:  # every block starts as the identity: x + 0 * (finite) is x, exactly
        torch.testing.assert_close(f, embedded, rtol=0, atol=0)


def test_features_are_the_block_outputs_and_do_not_change_the_output(tiny_config):
    model = random_weights(DiT(tiny_config)).eval()
    x, t, y = example_inputs(tiny_config)
    with torch.no_grad():
        plain = model(x, t, y)
        out, feats = model(x, t, y, return_features=True)
        c = model.condition(t, y)
        redone = model.unpatchify(model.final_layer(feats[-1], c))
        second = model.blocks[1](feats[0], c)
    assert torch.equal(out, plain)
    assert len(feats) == tiny_config.depth
    assert all(f.shape == (3, tiny_config.num_patches, tiny_config.hidden_size) for f in feats)
    # the same modules on the same tensors as inside the forward: equal bits
    torch.testing.assert_close(redone, out, rtol=0, atol=0)
    torch.testing.assert_close(second, feats[1], rtol=0, atol=0)


def test_one_step_generator_has_no_timestep_and_refuses_one():
    cfg = TINY_CONFIGS["onestep-cond"]
    model = random_weights(DiT(cfg)).eval()
    names = dict(model.named_parameters())
    assert not any(n.startswith("t_embedder") for n in names)
    z, _, y = example_inputs(cfg)
    assert model(z, y=y).shape == z.shape  # noise in, image out
    with pytest.raises(ValueError, match="no timestep"):
        model(z, torch.zeros(3), y)


def test_unconditional_generator_learns_modulation_vectors_instead_of_adaln():
    cfg = TINY_CONFIGS["onestep-uncond"]
    model = DiT(cfg)
    names = dict(model.named_parameters())
    assert "blocks.0.modulation" in names and names["blocks.0.modulation"].shape == (1, 6 * cfg.hidden_size)
    assert not any("adaLN" in n or "y_embedder" in n for n in names)
    with pytest.raises(ValueError, match="takes no labels"):
        model(torch.zeros(1, 3, 8, 8), y=torch.zeros(1, dtype=torch.long))


def test_denoiser_requires_timesteps_and_labels():
    cfg = TINY_CONFIGS["ddpm-cfg"]
    model = DiT(cfg)
    x, t, y = example_inputs(cfg)
    with pytest.raises(ValueError, match="needs timesteps"):
        model(x, None, y)
    with pytest.raises(ValueError, match="needs labels"):
        model(x, t, None)


def test_null_label_row_is_what_label_dropout_uses():
    cfg = TINY_CONFIGS["ddpm-cfg"]
    model = random_weights(DiT(cfg)).eval()
    _x, _t, y = example_inputs(cfg)
    with torch.no_grad():
        dropped = model.y_embedder(y, train=False, force_drop_ids=torch.ones_like(y))
    # an embedding lookup copies rows: exact
    torch.testing.assert_close(dropped, model.y_embedder.embedding_table.weight[[cfg.num_classes] * 3], rtol=0, atol=0)
