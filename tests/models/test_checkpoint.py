import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy

from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.contract.fileio import verification
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
    with torch.no_grad():  # weights copied through the file bit for bit, the same operations: equal bits
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


def rewrite(path, metadata=None, tensors=None):
    """Rewrite a checkpoint with changed header metadata or tensors (as a hostile editor would)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta, old = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    save_file({**old, **(tensors or {})}, str(path), metadata={**meta, **(metadata or {})})
    return old


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "edgedit.config",
            {"depth": -1},
            r"invalid model config \(`depth`\): field 'depth': .* greater than or equal "
            r"to 1 \(got -1\)",
        ),
        ("edgedit.config", {"mlp_ratio": "4"}, r"field 'mlp_ratio': input should be a valid number \(got '4'\)"),
        (
            "edgedit.config",
            {"class_dropout_prob": "0.1"},
            r"field 'class_dropout_prob': input should be a valid number",
        ),
        ("edgedit.provenance", [1, 2], r"not a valid 'edgedit.provenance' metadata: expected a JSON object, got list"),
        ("edgedit.provenance", {"steps": "many"}, r"field 'steps': input should be a valid integer"),
        ("edgedit.provenance", "{not json", r"'edgedit.provenance' metadata: not JSON"),
        ("edgedit.noise", "mt19937", r"metadata 'edgedit.noise' is 'mt19937', not one of pcg64-keyed, pcg64"),
    ],
)
def test_bad_header_metadata_is_one_line_naming_the_file_and_field(tmp_path, key, value, message):
    path = save_model(DiT(TINY_CONFIGS["ddpm-cfg"]), tmp_path / "m.safetensors")
    if key == "edgedit.config":
        value = {**DiT(TINY_CONFIGS["ddpm-cfg"]).config.to_dict(), **value}
    rewrite(path, {key: value if isinstance(value, str) else json.dumps(value)})
    with pytest.raises(EdgeditError, match="m.safetensors: .*" + message) as err:
        read_checkpoint(path)
    assert "\n" not in str(err.value)


def test_altered_tensor_bytes_are_refused_unless_verification_is_off(tmp_path):
    path = save_model(random_weights(DiT(TINY_CONFIGS["ddpm-cfg"])), tmp_path / "m.safetensors")
    old = rewrite(path)  # same bytes: still verifies
    read_checkpoint(path)
    flipped = old["final_layer.linear.bias"].clone()
    flipped.view(torch.int32)[0] ^= 1  # one bit of one float
    rewrite(path, tensors={"final_layer.linear.bias": flipped})
    with pytest.raises(EdgeditError, match=r"m.safetensors: its tensors do not match the content hash .* --no-verify"):
        load_model(path)
    with verification(False):
        model, _ = load_model(path)
    assert torch.equal(model.state_dict()["final_layer.linear.bias"], flipped)


def test_files_from_before_the_hash_load_with_a_warning(tmp_path, caplog):
    path = save_model(DiT(TINY_CONFIGS["ddpm-cfg"]), tmp_path / "m.safetensors")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    del meta["edgedit.tensors_sha256"]
    save_file(tensors, str(path), metadata={**meta, "edgedit.format": "edgedit.dit-checkpoint/1"})
    read_checkpoint(path)
    assert "not verified" in caplog.text
    save_file(tensors, str(path), metadata={**meta, "edgedit.format": "edgedit.dit-checkpoint/2"})  # hash stripped
    with pytest.raises(EdgeditError, match="no 'edgedit.tensors_sha256'"):
        read_checkpoint(path)


def test_the_content_hash_does_not_depend_on_how_tensors_are_held():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.integers(0, 9, 5)
    digest = checkpoint.tensors_sha256([("a", a), ("b", b)])
    assert digest == checkpoint.tensors_sha256([("b", b), ("a", np.asfortranarray(a))])
    assert digest == checkpoint.tensors_sha256([("a", a.astype(">f4")), ("b", b)])
    assert digest != checkpoint.tensors_sha256([("a", a.reshape(4, 3)), ("b", b)])
    assert digest != checkpoint.tensors_sha256([("a2", a), ("b", b)])


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


def test_the_cli_refuses_a_damaged_checkpoint_and_reads_it_with_no_verify(tmp_path):
    from typer.testing import CliRunner

    from edgedit.cli import app

    path = save_model(random_weights(DiT(TINY_CONFIGS["onestep-uncond"])), tmp_path / "m.safetensors")
    old = rewrite(path)
    rewrite(path, tensors={"pos_embed": old["pos_embed"] + 1})
    runner = CliRunner()
    refused = runner.invoke(app, ["info", str(path)])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1 and "content hash" in refused.stderr
    read = runner.invoke(app, ["--no-verify", "info", str(path)])
    assert read.exit_code == 0, read.output


def test_a_checkpoint_keeps_its_noise_scheme_through_sampling_and_export(tmp_path):
    """Same seeds, same images: a file records its scheme, one that records none was made with the
    first, and its ONNX export inherits it, whatever the current default."""
    from edgedit.contract.schedules import NOISE_SCHEME, NOISE_UNRECORDED
    from edgedit.export.exporter import BatchSpec, export_onnx
    from edgedit.runtime.backends import load_backend
    from edgedit.runtime.noise import noise_from_seeds
    from edgedit.runtime.samplers import generate

    cfg = TINY_CONFIGS["onestep-cond"]
    path = save_model(random_weights(DiT(cfg), seed=1), tmp_path / "new.safetensors")
    assert read_checkpoint(path).noise == NOISE_SCHEME
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    legacy = tmp_path / "legacy.safetensors"  # as edgedit 0.1 wrote it: no scheme named
    save_file(tensors, str(legacy), metadata={k: v for k, v in meta.items() if k != "edgedit.noise"})
    assert read_checkpoint(legacy).noise == NOISE_UNRECORDED != NOISE_SCHEME
    seeds = [0, 5, 9]
    images = {name: generate(load_backend(p), seeds, batch=3) for name, p in (("new", path), ("legacy", legacy))}
    net, _ = load_model(legacy)
    assert (
        save_model(net, tmp_path / "again.safetensors")
        and read_checkpoint(tmp_path / "again.safetensors").noise == NOISE_UNRECORDED
    )  # re-saved (e.g. fine-tuned), it keeps its lineage's scheme
    onnx = export_onnx(net, tmp_path / "legacy.onnx", {"checkpoint": legacy.name}, BatchSpec.static(3)).path
    assert load_backend(onnx).meta.sampler.noise == NOISE_UNRECORDED
    # ONNX Runtime against torch, float32 through 2 blocks: 1e-6 measured (|image| < 3.2); 1e-4 is the export's
    # parity bound, and the other noise scheme is ~1 away
    assert np.abs(generate(load_backend(onnx), seeds, batch=3) - images["legacy"]).max() < 1e-4
    assert np.abs(images["new"] - images["legacy"]).max() > 0.1  # the schemes differ, and each file kept its own
    # the model is the same function of its input: only the seeds' noise differs
    z = noise_from_seeds(seeds, (cfg.in_channels, cfg.input_size, cfg.input_size), NOISE_UNRECORDED)
    backend = load_backend(path)
    direct = backend.run({"z": z, "y": np.array([s % cfg.num_classes for s in seeds], np.int32)})
    # the same torch model on the same z at the same batch: equal bits here; 1e-5 (~40 ulp) is about the noise
    assert np.abs(next(iter(direct.values())) - images["legacy"]).max() < 1e-5
