import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy

from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.models import checkpoint
from edgedit.models.checkpoint import load_model, read_checkpoint, save_model
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from tests.helpers import TINY_CONFIGS, example_inputs


def test_save_load_round_trip_gives_identical_outputs(tmp_path, tiny_config):
    model = random_weights(DiT(tiny_config), seed=3).eval()
    path = save_model(model, tmp_path / "m.safetensors", provenance={"method": "test"})
    loaded, info = load_model(path)
    x, t, y = example_inputs(tiny_config)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), model(x, t, y))
    assert info.config == tiny_config
    assert info.provenance["method"] == "test" and "created" in info.provenance
    assert info.num_params == model.num_params()
    assert info.metadata["edgedit.format"] == checkpoint.FORMAT


def test_metadata_carries_the_config_as_json(tmp_path):
    cfg = TINY_CONFIGS["onestep-cond"]
    path = save_model(DiT(cfg), tmp_path / "m.safetensors")
    assert DiTConfig.from_json(read_checkpoint(path).metadata["edgedit.config"]) == cfg


def test_truncated_file_is_refused_in_one_line(tmp_path):
    path = save_model(DiT(TINY_CONFIGS["ddpm-cfg"]), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(EdgeditError, match="not a readable safetensors file") as err:
        read_checkpoint(path)
    assert "\n" not in str(err.value)


def test_a_pickle_is_never_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(EdgeditError, match="not a readable safetensors file"):
        read_checkpoint(path)


def test_foreign_safetensors_without_edgedit_config(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_numpy({"w": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(EdgeditError, match="without an edgedit model config"):
        read_checkpoint(path)


def _rewrite(path, mutate):
    """Re-save a checkpoint's tensors with `mutate(dict)` applied, keeping its metadata."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    mutate(tensors)
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.pop("blocks.1.attn.qkv.weight"), r"missing 1 tensor\(s\): blocks.1.attn.qkv.weight"),
        (lambda t: t.update(extra=torch.zeros(2)), r"unexpected 1 tensor\(s\): extra"),
        (lambda t: t.update({"final_layer.linear.bias": torch.zeros(7)}), r"final_layer.linear.bias \[7\] != \[32\]"),
    ],
)
def test_tensors_are_validated_against_the_config(tmp_path, mutate, message):
    path = save_model(DiT(TINY_CONFIGS["ddpm-cfg"]), tmp_path / "m.safetensors")
    _rewrite(path, mutate)
    with pytest.raises(EdgeditError, match=message) as err:
        read_checkpoint(path)
    assert "\n" not in str(err.value)


def test_bad_config_in_metadata_names_the_file(tmp_path):
    path = save_model(DiT(TINY_CONFIGS["ddpm-cfg"]), tmp_path / "m.safetensors")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    meta["edgedit.config"] = json.dumps({**json.loads(meta["edgedit.config"]), "depth": -1})
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(EdgeditError, match=r"m.safetensors: invalid model config: depth must be a positive"):
        read_checkpoint(path)


def test_a_failed_save_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = save_model(DiT(TINY_CONFIGS["ddpm-cfg"]), tmp_path / "m.safetensors")
    before = path.read_bytes()

    def half_write_then_fail(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", half_write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save_model(random_weights(DiT(TINY_CONFIGS["ddpm-cfg"])), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    path = save_model(DiT(TINY_CONFIGS["ddpm-cfg"]), tmp_path / "m.safetensors")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
