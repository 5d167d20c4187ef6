import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgedit.checkpoint import load_model, save_model
from edgedit.data.pairs import generate_pairs
from edgedit.errors import EdgeditError
from edgedit.cost import accounting
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from edgedit.train.distill import ImageLoss, feature_loss, mi1_taps, run_distillation, ta_block_map
from edgedit.train.trainer import TrainSettings
from tests.conftest import TINY_CONFIGS

STUDENT = dict(student="DiT-Nano-XS/2", depth=2, hidden_size=32, num_heads=2, patch_size=4)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    teacher = save_model(random_weights(DiT(TINY_CONFIGS["edm-cond"]), seed=3).eval(), folder / "teacher.safetensors")
    generate_pairs(teacher, folder / "with-trajectory", count=48, steps=4, trajectory=2, shard_size=20, batch=16)
    generate_pairs(teacher, folder / "plain", count=16, steps=4, shard_size=16, batch=16)
    return folder


def settings(steps=12, **changes):
    return TrainSettings(steps, batch=16, lr=2e-3, checkpoint_every=4, **changes)


def distil(pairs, out, method, steps=12, **kwargs):
    args = {**STUDENT, **kwargs}  # kwargs may override the student's knobs
    return run_distillation(pairs / "with-trajectory", args.pop("student"), method, out, settings(steps), **args)


def test_layer_maps():
    assert ta_block_map(4, 8) == [1, 3, 5, 7] and ta_block_map(3, 12) == [3, 7, 11] and ta_block_map(2, 2) == [0, 1]
    assert mi1_taps(8, 3) == [1, 3, 5] and mi1_taps(6, 2) == [1, 3]


def test_pseudo_huber_is_l2_near_zero_and_l1_far_out():
    loss = ImageLoss("pseudo-huber")
    x = torch.zeros(1, 1, 16, 16)
    c = 0.00054 * 16
    small, big = torch.full_like(x, 1e-4), torch.full_like(x, 10.0)
    assert loss(small, x).item() == pytest.approx((small.pow(2).sum().item() + c * c) ** 0.5 - c)
    assert loss(big, x).item() == pytest.approx(big.norm().item() - c, rel=1e-6)
    assert feature_loss("cosine", torch.ones(2, 3, 4), torch.ones(2, 3, 4)).abs().max() < 1e-6
    with pytest.raises(EdgeditError, match="lpips"):
        ImageLoss("lpips")


@pytest.mark.parametrize("method, kwargs", [("output", {}), ("mi1", {}), ("ta", {"ta": "DiT-Nano-XS/2", "ta_steps": 6})])
def test_every_method_trains_and_saves_only_the_student(pairs, tmp_path, method, kwargs):
    losses = []
    if method == "ta":
        kwargs = {**kwargs}
        # a TA of the student's grid, deeper and wider than it
        from edgedit.train import distill

        ta = save_model(random_weights(DiT(distill.student_config("DiT-Nano-XS/2", _manifest(pairs), depth=4, hidden_size=48,
                                                                  num_heads=2, patch_size=4))),
                        tmp_path / "ta.safetensors")
        kwargs = {"ta": str(ta)}
    out = distil(pairs, tmp_path / f"{method}.safetensors", method, steps=24, on_step=lambda s, v: losses.append(v), **kwargs)
    model, info = load_model(out)
    assert [k for k in model.state_dict()] == list(accounting.parameter_shapes(model.config))  # no auxiliaries
    assert info.provenance["method"] == method and info.config.one_step
    assert np.mean(losses[-6:]) < np.mean(losses[:6])


def _manifest(pairs):
    from edgedit.data.pairs import PairsStore

    return PairsStore(pairs / "with-trajectory").manifest


def test_a_preset_ta_is_distilled_first(pairs, tmp_path):
    out = distil(pairs, tmp_path / "s.safetensors", "ta", steps=4, ta="DiT-Nano-XS/2", patch_size=2)  # TA grid: patch 2
    assert (tmp_path / "s.ta.safetensors").exists()
    assert load_model(out)[1].provenance["ta"]["preset"] == "DiT-Nano-XS/2"


def test_distilled_students_export_and_match_torch(pairs, tmp_path):
    from edgedit.export.exporter import BatchSpec, export_onnx
    from edgedit.metrics import psnr_db
    from edgedit.runtime.backends import load_backend
    from edgedit.runtime.samplers import generate

    out = distil(pairs, tmp_path / "mi1.safetensors", "mi1", steps=8)
    model, _ = load_model(out)
    onnx = export_onnx(model, tmp_path / "mi1.onnx", {"checkpoint": out.name}, BatchSpec.parse("1:4:8")).path
    a, b = (generate(load_backend(p), range(8), batch=8) for p in (out, onnx))
    assert psnr_db(a, b) > 80


@pytest.mark.parametrize("method, kwargs, message", [
    ("mi1", {"pairs_folder": "plain"}, "hold no trajectory states.*--trajectory K"),
    ("ta", {"ta": "DiT-Nano-XS/2", "ta_depth": 1}, "must be at least as deep and as wide"),
    ("ta", {}, "needs --ta"),
    ("output", {"student": "ckpt-8x8"}, "makes 3x8x8 images .* the pairs are 1x16x16"),
])
def test_bad_input(pairs, tmp_path, method, kwargs, message):
    folder = pairs / kwargs.pop("pairs_folder", "with-trajectory")
    student = kwargs.pop("student", STUDENT["student"])
    if student == "ckpt-8x8":
        student = str(save_model(DiT(TINY_CONFIGS["onestep-uncond"]), tmp_path / "other.safetensors"))
        overrides = {}
    else:
        overrides = {k: v for k, v in STUDENT.items() if k != "student"}
    if kwargs.pop("ta_depth", None):
        from edgedit.train import distill

        kwargs["ta"] = str(save_model(DiT(distill.student_config("DiT-Nano-XS/2", _manifest(pairs), depth=1, hidden_size=32,
                                                                     num_heads=2, patch_size=4)), tmp_path / "ta.safetensors"))
    with pytest.raises(EdgeditError, match=message):
        run_distillation(folder, student, method, tmp_path / "s.safetensors", settings(2), **kwargs, **overrides)


@pytest.mark.slow
def test_two_process_torchrun_distillation_matches_one_process(pairs, tmp_path):
    cli = [sys.executable, "-m", "edgedit", "distill", "--pairs", str(pairs / "with-trajectory"), "--method", "mi1",
           "--student", "DiT-Nano-XS/2", "--depth", "2", "--width", "32", "--heads", "2", "--patch", "4",
           "--steps", "4", "--batch", "16", "--lr", "2e-3", "--checkpoint-every", "2", "--sample-every", "2"]
    one = subprocess.run([*cli, "-o", str(tmp_path / "one.safetensors")], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29519",
                          "-m", "edgedit", *cli[3:], "-o", str(tmp_path / "two.safetensors")],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = (load_model(tmp_path / f"{n}.safetensors")[0].state_dict() for n in ("one", "two"))
    assert load_model(tmp_path / "two.safetensors")[1].provenance["processes"] == 2
    assert two.stdout.count("wrote") == 1  # rank 0 reports, rank 1 is silent
    for run in ("one", "two"):  # the student's grids, from rank 0 only
        assert sorted(p.name for p in (tmp_path / f"{run}.samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
