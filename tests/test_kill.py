"""SIGKILL at a random moment: no output is ever half-written, a re-run removes what the killed
process left and, where the README promises determinism, gives the same result.

Each command runs once in-process as the reference, which also times its writing phase (from
the first entry in its output folder to the end); once as a subprocess, SIGKILLed a seeded random
time into that phase after its own first entry appears; and once more in-process over the killed
run's folder.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgedit.cli import app

pytestmark = pytest.mark.slow
SEED = 20240611  # the kill moments; another seed explores other moments
runner = CliRunner()


def reference(args: list[str], folder: Path | None = None) -> float:
    """Run `edgedit ARGS` in-process; the seconds from its first entry in `folder` to its end."""
    first, done_event = [], threading.Event()

    def watch():
        while not done_event.is_set() and not first:
            if folder.exists() and any(folder.iterdir()):
                first.append(time.monotonic())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch) if folder else None
    if watcher:
        folder.mkdir(exist_ok=True)
        watcher.start()
    start = time.monotonic()
    done = runner.invoke(app, args)
    end = time.monotonic()
    done_event.set()
    if watcher:
        watcher.join()
    assert done.exit_code == 0, done.output
    return end - (first[0] if first else start)


def killed(args: list[str], folder: Path, window: float, rng: random.Random) -> bool:
    """Run `edgedit ARGS` writing into `folder`; SIGKILL it a random time within `window` seconds
    after its first entry there appears. True if it was killed, False if it finished first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedit", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    delay = rng.uniform(0, window)
    deadline = time.monotonic() + 600
    while proc.poll() is None and not any(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.005)
    kill_at = time.monotonic() + delay
    while proc.poll() is None and time.monotonic() < kill_at:
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        print(f"killed {args[0]} {delay:.2f} s after it began writing; left {[p.name for p in folder.rglob('*')]}")
        return True
    assert proc.returncode == 0, proc.stderr.read()
    return False


def staging(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.partial"))


@pytest.fixture
def student(exported, tmp_path):
    return Path(shutil.copy(exported["onestep-cond"][1], tmp_path / "s.safetensors"))


def test_export_killed_anywhere_leaves_no_half_model_and_the_rerun_is_the_same(student, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    out.mkdir()
    args = ["export", str(student), "--dynamic-batch", "1:2:4", "-o"]
    window = reference([*args, str(ref / "s.onnx")], ref)
    expected = (ref / "s.onnx").read_bytes()
    killed([*args, str(out / "s.onnx")], out, window, random.Random(SEED))
    model = out / "s.onnx"
    assert not model.exists() or model.read_bytes() == expected  # absent, or the whole parity-checked model
    reference([*args, str(model)])
    assert model.read_bytes() == expected and staging(out) == []


def test_quantize_killed_anywhere_leaves_no_half_model(exported, tmp_path):
    from edgedit.contract.onnx_header import read_onnx_header

    onnx = shutil.copy(exported["onestep-cond"][0], tmp_path / "s.onnx")
    ref, out = tmp_path / "ref", tmp_path / "out"
    out.mkdir()
    args = ["quantize", str(onnx), "--calib-samples", "8", "--heldout-samples", "4", "--min-psnr", "0", "-o"]
    window = reference([*args, str(ref / "q.onnx")], ref)
    killed([*args, str(out / "q.onnx")], out, window, random.Random(SEED + 1))
    model = out / "q.onnx"
    if model.exists():
        assert "edgedit.quantization" in read_onnx_header(model)[0]  # the header is written last
    reference([*args, str(model)])
    assert "edgedit.quantization" in read_onnx_header(model)[0] and staging(out) == []


def test_sample_killed_anywhere_leaves_whole_files_and_the_rerun_is_the_same(student, tmp_path):
    from PIL import Image

    ref, out = tmp_path / "ref", tmp_path / "out"
    out.mkdir()

    def args(folder):
        return [
            "sample",
            str(student),
            "-n",
            "256",
            "--batch",
            "64",
            "-o",
            str(folder / "g.png"),
            "--npz",
            str(folder / "g.npz"),
        ]

    window = reference(args(ref), ref)
    killed(args(out), out, window, random.Random(SEED + 2))
    for name in ("g.png", "g.npz"):
        if (out / name).exists():
            assert (out / name).read_bytes() == (ref / name).read_bytes()
    reference(args(out))
    with np.load(out / "g.npz") as got, np.load(ref / "g.npz") as want:  # the same batches on this machine
        assert all(np.array_equal(got[k], want[k]) for k in ("images", "seeds", "labels"))
    Image.open(out / "g.png").verify()
    assert staging(out) == []


def test_teacher_train_killed_anywhere_resumes_to_the_same_weights(tmp_path):
    import torch
    from safetensors import safe_open

    from edgedit.contract.artefacts import train_state
    from edgedit.models.checkpoint import load_model

    ref, out = tmp_path / "ref", tmp_path / "out"
    out.mkdir()
    args = [
        "teacher",
        "train",
        "--data",
        "digits",
        "--steps",
        "48",
        "--checkpoint-every",
        "5",
        "--batch",
        "8",
        "--depth",
        "1",
        "--width",
        "32",
        "--heads",
        "2",
        "--patch",
        "4",
        "--lr",
        "1e-3",
        "-o",
    ]
    window = reference([*args, str(ref / "t.safetensors")], ref)
    killed([*args, str(out / "t.safetensors")], out, window, random.Random(SEED + 3))
    model, state = out / "t.safetensors", train_state(out / "t.safetensors")
    if model.exists():
        load_model(model)  # whole: every tensor there and verified
    if state.exists():
        with safe_open(str(state), "pt") as f:
            step = int(f.metadata()["step"])
            assert (step % 5 == 0 or step == 48) and all(f.get_tensor(k) is not None for k in f.keys())  # noqa: SIM118
    for grid in (out / "t.samples").glob("*.png") if (out / "t.samples").exists() else ():
        from PIL import Image

        Image.open(grid).verify()
    reference([*args, str(model), *(["--resume"] if state.exists() else [])])
    want, got = load_model(ref / "t.safetensors")[0].state_dict(), load_model(model)[0].state_dict()
    for key, value in want.items():  # resumed = uninterrupted: the same operations in the same order, this machine
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
    assert staging(out) == []
