import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgedit.contract.errors import EdgeditError
from edgedit.cost import accounting
from edgedit.data.pairs import generate_pairs
from edgedit.models.checkpoint import load_model, save_model
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from edgedit.train.distill import (
    DistillOptions,
    ImageLoss,
    distill,
    feature_loss,
    mi1_taps,
    student_config,
    ta_block_map,
)
from edgedit.train.trainer import TrainSettings
from tests.helpers import TINY_CONFIGS

STUDENT = dict(student="DiT-Nano-XS/2", depth=2, hidden_size=32, num_heads=2, patch_size=4)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    teacher = save_model(random_weights(DiT(TINY_CONFIGS["edm-cond"]), seed=3).eval(), folder / "teacher.safetensors")
    generate_pairs(teacher, folder / "with-trajectory", count=48, steps=4, trajectory=2, shard_size=20, batch=16)
    generate_pairs(teacher, folder / "plain", count=16, steps=4, shard_size=16, batch=16)
    return folder


def settings(steps=12, **changes):
    return TrainSettings(steps=steps, batch=16, lr=2e-3, checkpoint_every=4, **changes)


OPTION_NAMES = (
    "ta",
    "ta_steps",
    "loss",
    "feature_loss",
    "feature_weight",
    "taps",
    "real",
    "adv_weight",
    "disc_lr",
    "resume",
)


def options(folder, out, method, steps=12, **kwargs) -> DistillOptions:
    """DistillOptions; kwargs that are not options are the student's preset overrides."""
    checkpoint = str(kwargs.get("student", "")).endswith(".safetensors")  # a checkpoint takes no overrides
    args = {**({} if checkpoint else STUDENT), **kwargs}  # kwargs may override the student's knobs
    chosen = {k: args.pop(k) for k in OPTION_NAMES if k in args}
    return DistillOptions(
        pairs=folder,
        output=out,
        settings=settings(steps),
        student=args.pop("student"),
        method=method,
        overrides=args,
        **chosen,
    )


def distil(pairs, out, method, steps=12, on_step=None, **kwargs):
    return distill(options(pairs / "with-trajectory", out, method, steps, **kwargs), on_step=on_step)


def test_layer_maps():
    assert ta_block_map(4, 8) == [1, 3, 5, 7] and ta_block_map(3, 12) == [3, 7, 11] and ta_block_map(2, 2) == [0, 1]
    assert mi1_taps(8, 3) == [1, 3, 5] and mi1_taps(6, 2) == [1, 3]


def test_pseudo_huber_is_l2_near_zero_and_l1_far_out():
    loss = ImageLoss("pseudo-huber")
    x = torch.zeros(1, 1, 16, 16)
    c = 0.00054 * 16

    def exact(d: float) -> float:  # float64 reference of sqrt(s + c^2) - c for s = 256 d^2, in its stable form
        s = 256 * d * d
        return s / (math.sqrt(s + c * c) + c)

    # float32: a sum of 256 equal squares, a square root, an add and a divide each round to <= 1 ulp
    # (2^-24 relative) and the summation adds at most log2(256) = 8 roundings: 12 ulp, rounded up to 2e-6.
    # At d = 1e-6 the form sqrt(s + c^2) - c keeps about two digits (s / c^2 = 3.4e-6; float32 resolves 6e-8 of c).
    for d in (1e-6, 1e-4, 1e-2, 10.0):
        assert loss(torch.full_like(x, d), x).item() == pytest.approx(exact(d), rel=2e-6), d
    assert exact(10.0) == pytest.approx(160 - c + c * c / 320, rel=1e-9)  # L1 far out: ||d|| - c + c^2 / (2 ||d||)
    assert exact(1e-6) == pytest.approx(256e-12 / (2 * c), rel=1e-8)  # L2 near zero: s / 2c
    assert feature_loss("cosine", torch.ones(2, 3, 4), torch.ones(2, 3, 4)).abs().max() < 1e-6
    with pytest.raises(EdgeditError, match="lpips"):
        ImageLoss("lpips")


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("output", {}),
        ("mi1", {}),
        ("ta", {"ta": "DiT-Nano-XS/2", "ta_steps": 6}),
        ("adversarial", {"real": "digits", "adv_weight": 0.01}),
    ],
)
def test_every_method_trains_and_saves_only_the_student(pairs, tmp_path, method, kwargs):
    losses = []
    if method == "ta":
        kwargs = {**kwargs}
        # a TA of the student's grid, deeper and wider than it
        ta = save_model(
            random_weights(
                DiT(
                    student_config(
                        "DiT-Nano-XS/2", _manifest(pairs), depth=4, hidden_size=48, num_heads=2, patch_size=4
                    )
                )
            ),
            tmp_path / "ta.safetensors",
        )
        kwargs = {"ta": str(ta)}
    out = distil(
        pairs,
        tmp_path / f"{method}.safetensors",
        method,
        steps=24,
        on_step=lambda s, v, *total: losses.append(v),
        **kwargs,
    )
    model, info = load_model(out)
    assert list(model.state_dict()) == list(accounting.parameter_shapes(model.config))  # no auxiliaries
    assert info.provenance["method"] == method and info.config.one_step
    assert info.noise == _manifest(pairs)["sampler"]["noise"]  # seed s of the student draws pair s's noise
    assert np.mean(losses[-6:]) < np.mean(losses[:6])


def _manifest(pairs):
    from edgedit.data.pairs import PairsStore

    return PairsStore(pairs / "with-trajectory").manifest


def test_a_preset_ta_is_distilled_first(pairs, tmp_path):
    out = distil(pairs, tmp_path / "s.safetensors", "ta", steps=4, ta="DiT-Nano-XS/2", patch_size=2)  # TA grid: patch 2
    assert (tmp_path / "s.ta.safetensors").exists()
    assert load_model(out)[1].provenance["ta"]["preset"] == "DiT-Nano-XS/2"


def test_distilled_students_export_and_match_torch(pairs, tmp_path):
    from edgedit.eval.metrics import psnr_db
    from edgedit.export.exporter import BatchSpec, export_onnx
    from edgedit.runtime.backends import load_backend
    from edgedit.runtime.samplers import generate

    out = distil(pairs, tmp_path / "mi1.safetensors", "mi1", steps=8)
    model, _ = load_model(out)
    onnx = export_onnx(model, tmp_path / "mi1.onnx", {"checkpoint": out.name}, BatchSpec.parse("1:4:8")).path
    a, b = (generate(load_backend(p), range(8), batch=8) for p in (out, onnx))
    assert psnr_db(a, b) > 80  # RMS below 1e-4 of the range; torch and ONNX Runtime differ by ~1e-6 in float32


@pytest.mark.parametrize(
    "method, kwargs, message",
    [
        ("mi1", {"pairs_folder": "plain"}, "hold no trajectory states.*--trajectory K"),
        ("ta", {"ta": "DiT-Nano-XS/2", "ta_depth": 1}, "must be at least as deep and as wide"),
        ("ta", {}, "needs `ta`"),
        ("output", {"student": "ckpt-8x8"}, "makes 3x8x8 images .* the pairs are 1x16x16"),
        ("adversarial", {}, "`method` adversarial needs `real` DATA"),
        ("output", {"real": "digits"}, "`real` is only for `method` adversarial"),
        ("adversarial", {"real": "npz-8x8"}, "npz:.*: the real images are 3x8x8, the student makes 1x16x16"),
        ("adversarial", {"real": "digits", "disc_lr": 0.0}, "`disc_lr` must be > 0"),
    ],
)
def test_bad_input(pairs, tmp_path, method, kwargs, message):
    folder = pairs / kwargs.pop("pairs_folder", "with-trajectory")
    if kwargs.get("student") == "ckpt-8x8":
        kwargs["student"] = str(save_model(DiT(TINY_CONFIGS["onestep-uncond"]), tmp_path / "other.safetensors"))
    if kwargs.get("real") == "npz-8x8":
        np.savez(tmp_path / "real.npz", images=np.zeros((4, 3, 8, 8), np.float32), labels=np.arange(4))
        kwargs["real"] = f"npz:{tmp_path / 'real.npz'}"
    if kwargs.pop("ta_depth", None):
        kwargs["ta"] = str(
            save_model(
                DiT(
                    student_config(
                        "DiT-Nano-XS/2", _manifest(pairs), depth=1, hidden_size=32, num_heads=2, patch_size=4
                    )
                ),
                tmp_path / "ta.safetensors",
            )
        )
    with pytest.raises(EdgeditError, match=message):
        distill(options(folder, tmp_path / "s.safetensors", method, 2, **kwargs))


def test_a_refused_distillation_is_one_line_before_any_progress(pairs, tmp_path):
    from typer.testing import CliRunner

    from edgedit.cli import app

    result = CliRunner().invoke(
        app,
        [
            "distill",
            "--pairs",
            str(pairs / "with-trajectory"),
            "--method",
            "ta",
            "--steps",
            "2",
            "-o",
            str(tmp_path / "s.safetensors"),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["edgedit: error: --method ta needs --ta PRESET|CKPT (the teaching assistant)"]
    assert list(tmp_path.iterdir()) == []


def test_adversarial_training_moves_the_student_and_its_discriminator_and_resumes_bit_exactly(pairs, tmp_path):
    """Each step trains the discriminator on real training digits against the student, then the student;
    a run stopped at a checkpoint and resumed ends on the same bits as one that never stopped (same
    machine: identical operations in the same order)."""
    from safetensors import safe_open

    from edgedit.contract.artefacts import train_state

    start = save_model(
        random_weights(
            DiT(student_config("DiT-Nano-XS/2", _manifest(pairs), depth=2, hidden_size=32, num_heads=2, patch_size=4)),
            seed=4,
        ),
        tmp_path / "start.safetensors",
    )
    kwargs = {"student": str(start), "real": "digits", "adv_weight": 0.5}
    straight = distil(pairs, tmp_path / "straight.safetensors", "adversarial", steps=8, **kwargs)
    distil(pairs, tmp_path / "resumed.safetensors", "adversarial", steps=4, **kwargs)
    resumed = distil(pairs, tmp_path / "resumed.safetensors", "adversarial", steps=8, resume=True, **kwargs)
    with safe_open(str(train_state(straight)), "pt") as f:
        discriminator = {k: f.get_tensor(k) for k in f.keys() if k.startswith("objective.discriminator.")}  # noqa: SIM118
        assert any(k.startswith("doptim.") for k in f.keys())  # noqa: SIM118
    assert discriminator and all(torch.isfinite(v).all() for v in discriminator.values())
    a, b, s0 = (load_model(p)[0].state_dict() for p in (straight, resumed, start))
    assert any(not torch.equal(a[k], s0[k]) for k in a)  # the student moved
    for key in a:
        assert torch.equal(a[key], b[key]), key
    provenance = load_model(straight)[1].provenance
    assert provenance["real"] == "digits train split (1438 images)" and provenance["adv_weight"] == 0.5


@pytest.mark.slow
def test_two_process_torchrun_distillation_matches_one_process(pairs, tmp_path):
    cli = [
        sys.executable,
        "-m",
        "edgedit",
        "distill",
        "--pairs",
        str(pairs / "with-trajectory"),
        "--method",
        "mi1",
        "--student",
        "DiT-Nano-XS/2",
        "--depth",
        "2",
        "--width",
        "32",
        "--heads",
        "2",
        "--patch",
        "4",
        "--steps",
        "4",
        "--batch",
        "16",
        "--lr",
        "2e-3",
        "--checkpoint-every",
        "2",
        "--sample-every",
        "2",
    ]
    one = subprocess.run([*cli, "-o", str(tmp_path / "one.safetensors")], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "edgedit",
            *cli[3:],
            "-o",
            str(tmp_path / "two.safetensors"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = (load_model(tmp_path / f"{n}.safetensors")[0].state_dict() for n in ("one", "two"))
    assert load_model(tmp_path / "two.safetensors")[1].provenance["processes"] == 2
    assert two.stdout.count("wrote") == 1  # rank 0 reports, rank 1 is silent
    for run in ("one", "two"):  # the student's grids, from rank 0 only
        assert sorted(p.name for p in (tmp_path / f"{run}.samples").iterdir()) == [
            "step-0000002.png",
            "step-0000004.png",
        ]
    # float32: two half-batch gradients averaged by DDP round unlike one batch's (~1e-7 relative); after 4
    # AdamW steps the students differ by <= 1.2e-7 (3 seeds, AVX-512 and default kernels): 1e-5 + 1e-4 |w| ~80x.
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
