import argparse

import pytest
import torch
from typer.testing import CliRunner

from edgedit.cli import app
from edgedit.contract.config import resolve_config
from edgedit.models.checkpoint import load_model
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from tests.helpers import example_inputs

# An official-layout DiT small enough for a test: DiT-S/4's layout at 2 blocks, width 64.
TINY_ARGS = ["--model", "DiT-S/4", "--image-size", "128", "--depth", "2", "--width", "64", "--heads", "2"]
runner = CliRunner()


def official_like_state_dict():
    cfg = resolve_config("DiT-S/4", input_size=16, depth=2, hidden_size=64, num_heads=2)
    model = random_weights(DiT(cfg), seed=7).eval()
    return cfg, model, {k: v.clone() for k, v in model.state_dict().items()}


def test_convert_dit_imports_an_official_state_dict(tmp_path):
    cfg, model, state = official_like_state_dict()
    torch.save(state, tmp_path / "DiT-tiny.pt")
    out = tmp_path / "converted.safetensors"
    result = runner.invoke(app, ["convert-dit", str(tmp_path / "DiT-tiny.pt"), "-o", str(out), *TINY_ARGS])
    assert result.exit_code == 0, result.output
    loaded, info = load_model(out)
    x, t, y = example_inputs(cfg)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), model(x, t, y))
    assert info.config == cfg
    assert "CC-BY-NC" in info.provenance["license"] and len(info.provenance["sha256"]) == 64


def test_train_py_checkpoint_with_pickled_args_is_refused(tmp_path):
    _, _, state = official_like_state_dict()
    torch.save({"model": state, "ema": state, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "0050000.pt")
    out = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["convert-dit", str(tmp_path / "0050000.pt"), "-o", str(out), *TINY_ARGS])
    assert result.exit_code == 2
    assert "argparse.Namespace" in result.stderr and "never unpickles" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_tensor_only_training_checkpoint_uses_the_ema_weights(tmp_path):
    _cfg, model, state = official_like_state_dict()
    raw = {k: torch.zeros_like(v) for k, v in state.items()}
    torch.save({"model": raw, "ema": state}, tmp_path / "ckpt.pt")
    out = tmp_path / "out.safetensors"
    assert runner.invoke(app, ["convert-dit", str(tmp_path / "ckpt.pt"), "-o", str(out), *TINY_ARGS]).exit_code == 0
    loaded, _ = load_model(out)
    assert torch.equal(loaded.final_layer.linear.weight, model.final_layer.linear.weight)


def test_wrong_image_size_gets_a_hint(tmp_path):
    _, _, state = official_like_state_dict()
    torch.save(state, tmp_path / "w.pt")
    args = [a if a != "128" else "256" for a in TINY_ARGS]
    result = runner.invoke(app, ["convert-dit", str(tmp_path / "w.pt"), "-o", str(tmp_path / "o.safetensors"), *args])
    assert result.exit_code == 2
    assert "pos_embed [1, 16, 64] != [1, 64, 64]" in result.stderr
    assert "image size of 128 (--image-size)" in result.stderr


@pytest.mark.parametrize("content", [b"", b"not a checkpoint" * 10])
def test_unreadable_files_are_refused(tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    result = runner.invoke(
        app, ["convert-dit", str(tmp_path / "bad.pt"), "-o", str(tmp_path / "o.safetensors"), *TINY_ARGS]
    )
    assert result.exit_code == 2
    assert "bad.pt: not a" in result.stderr
    assert not (tmp_path / "o.safetensors").exists()
