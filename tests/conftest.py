"""Shared fixtures. Tiny models stand in for real ones; tests give them random weights
(`edgedit.models.loading.random_weights`) because adaLN-Zero makes a freshly initialised DiT
output exactly zero, which would hide any bug."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from edgedit.contract.config import DiTConfig
from tests.helpers import TINY_CONFIGS


def _hermetic_environment() -> str:
    """The suite neither reads nor writes the user's home folder and depends on no variable set outside
    it: HOME and the XDG folders point at a fresh folder of this process (every cache and config that
    matplotlib, ONNX Runtime's telemetry id, torch hub or edgedit would touch lands there), and the
    variables edgedit reads (its latency fit, torchrun's world) are cleared. Set at import, before any
    of those libraries is imported; subprocesses inherit it. Each xdist worker gets its own."""
    home = tempfile.mkdtemp(prefix="edgedit-test-home-")
    for name in (
        "HOME",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "MPLCONFIGDIR",
        "TORCH_HOME",
    ):
        folder = home if name == "HOME" else os.path.join(home, name.lower())
        os.makedirs(folder, exist_ok=True)
        os.environ[name] = folder
    for name in [n for n in os.environ if n.startswith("EDGEDIT_")] + ["WORLD_SIZE", "RANK", "LOCAL_RANK"]:
        os.environ.pop(name, None)
    return home


TEST_HOME = _hermetic_environment()


def pytest_unconfigure(config):
    shutil.rmtree(TEST_HOME, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """pytest-randomly shuffles every run; -q hides its seed, so a failing run names it."""
    seed = getattr(config.option, "randomly_seed", None)
    if exitstatus not in (0, 5) and isinstance(seed, int):
        terminalreporter.write_line(f"tests ran in a random order: repeat it with -p randomly --randomly-seed={seed}")


@pytest.fixture(params=sorted(TINY_CONFIGS))
def tiny_config(request) -> DiTConfig:
    return TINY_CONFIGS[request.param]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Tiny models exported once per session: {name: (onnx path, checkpoint path)}. Random
    trained-scale weights, so every layer matters."""
    from edgedit.export.exporter import BatchSpec, export_onnx
    from edgedit.models.checkpoint import save_model
    from edgedit.models.dit import DiT
    from edgedit.models.loading import random_weights

    folder = tmp_path_factory.mktemp("exported")
    made = {}
    for name, batch in (
        ("onestep-uncond", BatchSpec.static(4)),
        ("onestep-cond", BatchSpec.parse("1:2:4")),
        ("edm-cond", BatchSpec.parse("1:2:4")),
    ):
        net = random_weights(DiT(TINY_CONFIGS[name]), seed=5).eval()
        checkpoint = save_model(net, folder / f"{name}.safetensors")
        source = {"checkpoint": checkpoint.name, "weights": "random"}
        onnx_path = export_onnx(net, folder / f"{name}.onnx", source, batch).path
        made[name] = (onnx_path, checkpoint)
    return made


FAKES = __import__("pathlib").Path(__file__).parent / "fakes"
FAKED = ("tensorrt", "pycuda", "polygraphy", "libcuda")  # polygraphy is real, re-imported over the fake TensorRT


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """TensorRT, pycuda and the CUDA driver replaced by the fakes in tests/fakes, under the real
    Polygraphy, and a fake CUDA device."""
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] in FAKED]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(FAKES))
    import edgedit.contract.device
    import edgedit.runtime.cuda_graph

    monkeypatch.setattr(
        edgedit.contract.device,
        "cuda_devices",
        lambda: {
            "driver": "12.6",
            "error": None,
            "devices": [
                {
                    "index": 0,
                    "name": "Orin (fake)",
                    "compute_capability": "8.7",
                    "memory_bytes": 7_600_000_000,
                    "integrated": True,
                }
            ],
        },
    )
    import libcuda
    import tensorrt

    monkeypatch.setattr(edgedit.runtime.cuda_graph, "_DRIVER", libcuda)
    tensorrt.CALLS.clear()
    libcuda.CALLS.clear()
    yield tensorrt
    for name in [m for m in sys.modules if m.split(".")[0] in FAKED]:
        sys.modules.pop(name)  # drop the fakes; monkeypatch then restores anything real
