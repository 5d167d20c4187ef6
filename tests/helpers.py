"""Helpers the tests share (fixtures live in conftest.py): tiny model configs and inputs, the
device check, and what the fake TensorRT builder recorded."""

from __future__ import annotations

from edgedit.contract.config import DiTConfig

# Small configs covering every structural variant of the network.
TINY_CONFIGS = {
    "ddpm-cfg": DiTConfig(
        input_size=8,
        in_channels=4,
        patch_size=2,
        hidden_size=32,
        depth=2,
        num_heads=4,
        num_classes=5,
        class_dropout_prob=0.1,
        learn_sigma=True,
    ),
    "edm-uncond": DiTConfig(
        input_size=8,
        in_channels=3,
        patch_size=4,
        hidden_size=24,
        depth=3,
        num_heads=2,
        num_classes=0,
        class_dropout_prob=0.0,
        learn_sigma=False,
        diffusion="edm",
    ),
    "edm-cond": DiTConfig(
        input_size=16,
        in_channels=1,
        patch_size=2,
        hidden_size=32,
        depth=2,
        num_heads=2,
        num_classes=10,
        class_dropout_prob=0.0,
        learn_sigma=False,
        diffusion="edm",
    ),
    "onestep-cond": DiTConfig(
        input_size=16,
        in_channels=1,
        patch_size=2,
        hidden_size=32,
        depth=2,
        num_heads=2,
        num_classes=10,
        class_dropout_prob=0.0,
        learn_sigma=False,
        diffusion="one-step",
    ),
    "onestep-uncond": DiTConfig(
        input_size=8,
        in_channels=3,
        patch_size=2,
        hidden_size=16,
        depth=3,
        num_heads=4,
        mlp_ratio=2.5,
        num_classes=0,
        class_dropout_prob=0.0,
        learn_sigma=False,
        diffusion="one-step",
    ),
}


def example_inputs(cfg: DiTConfig, batch: int = 3, seed: int = 1):
    """(x, t, y) for `DiT.forward`, with None where the config takes no such input."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
    t = None if cfg.one_step else torch.rand(batch, generator=gen) * 999
    y = torch.randint(0, cfg.num_classes, (batch,), generator=gen) if cfg.class_conditional else None
    return x, t, y


def has_real_tensorrt() -> bool:
    """True on a device with TensorRT and a CUDA GPU (jetson/selftest.sh runs the `device` tests there)."""
    import importlib.util

    from edgedit.contract.device import cuda_devices

    return importlib.util.find_spec("tensorrt") is not None and bool(cuda_devices()["devices"])


def built(fake_tensorrt) -> dict:
    """What the (fake) TensorRT builder was asked to build, through the real Polygraphy."""
    (record,) = [details for what, details in fake_tensorrt.CALLS if what == "build_serialized_network"]
    return record


def bench_record(**changes):
    """A bench record as a file from another machine could hold it, validated like one; `p50` and
    `min`/`max` set its latency, any other name a field of the record."""
    from edgedit.bench.records import BenchRecord
    from edgedit.contract.config import PRESETS

    latency = {"n": 10, "min": 1.0, "mean": 1.0, "p50": 1.0, "p90": None, "p99": None, "max": 1.0, "std": 0.0}
    record = {
        "model": "m.onnx", "backend": "onnxruntime", "provider": "CPUExecutionProvider", "precision": "fp32",
        "batch": 1, "what": "model", "network_evaluations_per_call": 1, "latency_ms": latency,
        "latency_per_image_ms": 1.0, "throughput_img_s": 1000.0, "peak_rss_mb": 100.0, "rss_growth_mb": 10.0,
        "random_weights": False, "config": PRESETS["DiT-Nano-S/2"].config.to_dict(),
        "env": {"platform": "Linux x86_64"}, "interrupted": False,
    }  # fmt: skip
    for key, value in changes.items():
        (latency if key in latency else record)[key] = value
    return BenchRecord.model_validate(record)
