"""Shared fixtures. Tiny models stand in for real ones; tests give them random weights
(`edgedit.models.loading.random_weights`) because adaLN-Zero makes a freshly initialised DiT
output exactly zero, which would hide any bug."""

from __future__ import annotations

import pytest

from edgedit.config import DiTConfig

# Small configs covering every structural variant of the network.
TINY_CONFIGS = {
    "ddpm-cfg": DiTConfig(input_size=8, in_channels=4, patch_size=2, hidden_size=32, depth=2, num_heads=4,
                              num_classes=5, class_dropout_prob=0.1, learn_sigma=True),
    "edm-uncond": DiTConfig(input_size=8, in_channels=3, patch_size=4, hidden_size=24, depth=3, num_heads=2,
                                 num_classes=0, class_dropout_prob=0.0, learn_sigma=False, diffusion="edm"),
    "edm-cond": DiTConfig(input_size=16, in_channels=1, patch_size=2, hidden_size=32, depth=2, num_heads=2,
                          num_classes=10, class_dropout_prob=0.0, learn_sigma=False, diffusion="edm"),
    "onestep-cond": DiTConfig(input_size=16, in_channels=1, patch_size=2, hidden_size=32, depth=2, num_heads=2,
                              num_classes=10, class_dropout_prob=0.0, learn_sigma=False, diffusion="one-step"),
    "onestep-uncond": DiTConfig(input_size=8, in_channels=3, patch_size=2, hidden_size=16, depth=3, num_heads=4,
                                mlp_ratio=2.5, num_classes=0, class_dropout_prob=0.0, learn_sigma=False, diffusion="one-step"),
}


def example_inputs(cfg: DiTConfig, batch: int = 3, seed: int = 1):
    """(x, t, y) for `DiT.forward`, with None where the config takes no such input."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
    t = None if cfg.one_step else torch.rand(batch, generator=gen) * 999
    y = torch.randint(0, cfg.num_classes, (batch,), generator=gen) if cfg.class_conditional else None
    return x, t, y


@pytest.fixture(params=sorted(TINY_CONFIGS))
def tiny_config(request) -> DiTConfig:
    return TINY_CONFIGS[request.param]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Tiny models exported once per session: {name: (onnx path, checkpoint path)}. Random
    trained-scale weights, so every layer matters."""
    from edgedit.checkpoint import save_model
    from edgedit.export.exporter import BatchSpec, export_onnx
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
    import edgedit.doctor
    import edgedit.runtime.cuda_graph

    monkeypatch.setattr(edgedit.doctor, "cuda_devices", lambda: {
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


def has_real_tensorrt() -> bool:
    """True on a device with TensorRT and a CUDA GPU (jetson/selftest.sh runs the `device` tests there)."""
    import importlib.util

    from edgedit.doctor import cuda_devices

    return importlib.util.find_spec("tensorrt") is not None and bool(cuda_devices()["devices"])
