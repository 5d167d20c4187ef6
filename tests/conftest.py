"""Shared fixtures. Tiny models stand in for real ones; tests give them random weights
(`edgedit.models.loading.random_weights`) because adaLN-Zero makes a freshly initialised DiT
output exactly zero, which would hide any bug."""

from __future__ import annotations

import pytest

from edgedit.contract.config import DiTConfig
from tests.helpers import TINY_CONFIGS


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
    for name, batch in (("onestep-uncond", BatchSpec.static(4)), ("onestep-cond", BatchSpec.parse("1:2:4")),
                        ("edm-cond", BatchSpec.parse("1:2:4"))):
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

    monkeypatch.setattr(edgedit.contract.device, "cuda_devices", lambda: {
        "driver": "12.6", "error": None,
        "devices": [{"index": 0, "name": "Orin (fake)", "compute_capability": "8.7", "memory_bytes": 7_600_000_000,
                     "integrated": True}]})
    import libcuda
    import tensorrt

    monkeypatch.setattr(edgedit.runtime.cuda_graph, "_DRIVER", libcuda)
    tensorrt.CALLS.clear()
    libcuda.CALLS.clear()
    yield tensorrt
    for name in [m for m in sys.modules if m.split(".")[0] in FAKED]:
        sys.modules.pop(name)  # drop the fakes; monkeypatch then restores anything real
