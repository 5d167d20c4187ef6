import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from edgedit.contract.artefacts import train_state
from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.data.datasets import load_data
from edgedit.models.checkpoint import load_model
from edgedit.models.dit import DiT
from edgedit.train.objectives import EDMObjective
from edgedit.train.trainer import Run, TrainSettings, batch_indices, train

TINY = DiTConfig(
    input_size=16,
    in_channels=1,
    patch_size=4,
    hidden_size=32,
    depth=2,
    num_heads=2,
    num_classes=10,
    class_dropout_prob=0.0,
    learn_sigma=False,
    diffusion="edm",
)


@pytest.fixture(scope="module")
def digits():
    data = load_data("digits", "train")
    return {"image": data.images[:256], "label": data.labels[:256]}


def edm(seed=0):
    torch.manual_seed(seed)
    return EDMObjective(DiT(TINY))


def run_for(steps, **changes):
    return Run(
        TINY, "digits", "edm-teacher", TrainSettings(steps=steps, batch=16, lr=1e-3, checkpoint_every=3, **changes)
    )


def weights(path):
    model, _ = load_model(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_lowers_the_loss_and_saves_the_ema(digits, tmp_path):
    losses = []
    out = train(run_for(30), digits, edm(), tmp_path / "t.safetensors", on_step=lambda s, loss: losses.append(loss))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    _model, info = load_model(out)
    assert info.provenance["weights"] == "EMA" and info.provenance["steps"] == 30 and info.config == TINY
    assert train_state(out).exists()


def test_the_saved_model_keeps_the_noise_scheme_of_the_model_trained(digits, tmp_path):
    objective = edm()
    objective.model.noise = "pcg64"  # e.g. fine-tuning a file of edgedit 0.1
    out = train(run_for(3), digits, objective, tmp_path / "t.safetensors")
    assert load_model(out)[1].noise == "pcg64"


def test_an_interrupted_run_resumes_to_the_same_weights(digits, tmp_path):
    straight = train(run_for(8), digits, edm(), tmp_path / "straight.safetensors")

    def die_at_step_5(step, loss):
        if step == 5:
            raise KeyboardInterrupt  # after the checkpoint at step 3: loses steps 4-5

    with pytest.raises(KeyboardInterrupt):
        train(run_for(8), digits, edm(), tmp_path / "r.safetensors", on_step=die_at_step_5)
    assert not (tmp_path / "r.safetensors").exists()
    resumed = train(run_for(8), digits, edm(), tmp_path / "r.safetensors", resume=True)
    # the same operations in the same order on this machine (state and RNG restored from exact copies): equal bits
    for key, value in weights(straight).items():
        torch.testing.assert_close(weights(resumed)[key], value, rtol=0, atol=0, msg=key)


def test_resume_refuses_a_different_run(digits, tmp_path):
    train(run_for(3), digits, edm(), tmp_path / "a.safetensors")
    with pytest.raises(EdgeditError, match="`lr` was 0.001, now 0.002"):
        changed = run_for(6)
        changed.settings.lr = 2e-3
        train(changed, digits, edm(), tmp_path / "a.safetensors", resume=True)
    with pytest.raises(EdgeditError, match="no training state"):
        train(run_for(3), digits, edm(), tmp_path / "none.safetensors", resume=True)


def test_resume_says_where_it_resumed_and_refuses_a_state_past_the_steps(digits, tmp_path):
    out = tmp_path / "s.safetensors"
    train(run_for(6), digits, edm(), out)
    said = []
    train(run_for(9), digits, edm(), out, resume=True, say=said.append)
    assert said == ["resumed s.safetensors from step 6 of 9"]
    said.clear()
    train(run_for(9), digits, edm(), out, resume=True, say=said.append)  # done: the model is written again
    assert said == ["s.safetensors: the saved state is at the last step, 9; writing the model from it"]
    stamp = out.stat().st_mtime_ns
    with pytest.raises(EdgeditError, match="is at step 9, past `steps` 4; give `steps` 9 or more"):
        train(run_for(4), digits, edm(), out, resume=True)
    assert out.stat().st_mtime_ns == stamp  # nothing written


def test_teacher_train_reports_in_one_line_and_errors_before_any_progress(tmp_path):
    from typer.testing import CliRunner

    from edgedit.cli import app

    runner = CliRunner()
    args = [
        "teacher",
        "train",
        "--data",
        "digits",
        "--depth",
        "1",
        "--width",
        "16",
        "--heads",
        "2",
        "--patch",
        "4",
        "--batch",
        "8",
        "-o",
        str(tmp_path / "t.safetensors"),
    ]
    done = runner.invoke(app, [*args, "--steps", "2"])
    assert done.exit_code == 0, done.output
    assert "1438 training images of digits" in done.stdout and "[[" not in done.stdout and "array" not in done.stdout
    bad = runner.invoke(app, [*args, "--steps", "1", "--resume"])  # the saved state is at step 2
    assert bad.exit_code == 2 and bad.stderr.strip().splitlines() == [
        f"edgedit: error: --resume: {tmp_path / 't.train-state.safetensors'} is at step 2, past --steps 1; give "
        "--steps 2 or more (or start a new output)"
    ]


def test_data_order_covers_every_row_once_per_epoch():
    rows = np.concatenate([batch_indices(s, 10, 35, seed=1) for s in range(7)])  # 70 rows = 2 epochs
    assert sorted(rows[:35]) == list(range(35)) and sorted(rows[35:]) == list(range(35))
    assert not np.array_equal(rows[:35], rows[35:])  # a new permutation each epoch


CLI = [
    sys.executable,
    "-m",
    "edgedit",
    "teacher",
    "train",
    "--data",
    "digits",
    "--depth",
    "2",
    "--width",
    "32",
    "--heads",
    "2",
    "--patch",
    "4",
    "--batch",
    "16",
    "--lr",
    "1e-3",
]


@pytest.mark.slow
def test_killed_process_loses_at_most_one_interval(tmp_path):
    out = tmp_path / "k.safetensors"
    proc = subprocess.Popen(
        [*CLI, "--steps", "400", "--checkpoint-every", "5", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = train_state(out)
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait()
    from safetensors import safe_open

    with safe_open(str(state), "pt") as f:
        saved = int(f.metadata()["step"])
    assert saved >= 5 and saved % 5 == 0 and not out.exists()
    done = subprocess.run(
        [*CLI, "--steps", str(saved + 5), "--checkpoint-every", "5", "--resume", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert load_model(out)[1].provenance["steps"] == saved + 5


@pytest.mark.slow
def test_two_process_torchrun_matches_one_process(tmp_path):
    args = ["--steps", "4", "--checkpoint-every", "2"]
    one = subprocess.run([*CLI, *args, "-o", str(tmp_path / "one.safetensors")], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
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
            *CLI[3:],
            *args,
            "-o",
            str(tmp_path / "two.safetensors"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    assert load_model(tmp_path / "two.safetensors")[1].provenance["processes"] == 2
    a, b = weights(tmp_path / "one.safetensors"), weights(tmp_path / "two.safetensors")
    # float32: two half-batch gradients averaged by DDP round unlike one batch's (~1e-7 relative); after 4
    # AdamW steps the EMAs differ by <= 3e-8 (9 seeds, AVX-512 and default kernels): 1e-5 + 1e-4 |w| >= 500x.
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)


def _edit_state(path, **metadata):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(path), metadata={k: v for k, v in {**meta, **metadata}.items() if v is not None})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"run": None}, "field 'run': field required"),
        ({"run": "{not json"}, "training state's 'run': not JSON"),
        ({"step": "-3"}, "field 'step': string should match pattern"),
        ({"step": "three"}, "field 'step': string should match pattern"),
        ({"optim_groups": '[{"lr": 0.001}]'}, "optimizer group: field 'params': field required"),
        ({"optim_groups": '[{"params": [0], "lr": 0.001}]'}, "optimizer groups do not cover this model"),
        ({"optim_scalars": '{"999": {}}'}, "optim_scalars entry '999' fits no parameter"),
        ({"format": "edgedit.train-state/0"}, "field 'format': input should be 'edgedit.train-state/1'"),
    ],
)
def test_a_damaged_train_state_is_refused_in_one_line_and_changes_nothing(digits, tmp_path, change, message):
    out = tmp_path / "s.safetensors"
    train(run_for(3), digits, edm(), out)
    _edit_state(train_state(out), **change)
    before = train_state(out).read_bytes(), out.read_bytes()
    with pytest.raises(EdgeditError, match=message) as err:
        train(run_for(6), digits, edm(), out, resume=True)
    assert "\n" not in str(err.value) and "delete it to start over" in str(err.value)
    assert (train_state(out).read_bytes(), out.read_bytes()) == before


def test_a_train_state_step_far_past_the_steps_is_refused(digits, tmp_path):
    out = tmp_path / "s.safetensors"
    train(run_for(3), digits, edm(), out)
    _edit_state(train_state(out), step=str(10**11))
    with pytest.raises(EdgeditError, match="is at step 100000000000, past `steps` 6"):
        train(run_for(6), digits, edm(), out, resume=True)
