"""What `edgedit models` reports for one configuration: exact size and compute, memory estimates and
the calibrated device latency estimates (JSON-ready). Torch-free."""

from __future__ import annotations

from typing import Any

from edgedit.contract.config import DiTConfig
from edgedit.cost import accounting
from edgedit.cost.fit import Fit, active_fit, estimates
from edgedit.cost.kernels import dit_kernels, total_kernels
from edgedit.cost.latency import int8_plan


def summarize(cfg: DiTConfig, name: str | None = None, plan=None, fit: Fit | None = None) -> dict[str, Any]:
    """`plan`: a quantized file's precision plan, for its INT8 estimates (default: the recipe's)."""
    fit = fit or active_fit()
    low, high = fit.range_ratios
    return {
        "name": name or "custom",
        "kind": cfg.kind,
        "config": cfg.to_dict(),
        "params": accounting.count_params(cfg),
        "macs": accounting.count_macs(cfg),
        "macs_breakdown": accounting.macs_breakdown(cfg),
        "tokens": cfg.num_patches,
        "tensorrt_kernels": total_kernels(dit_kernels(cfg)),
        "weights_bytes": accounting.weight_bytes(cfg),
        "activation_peak_bytes": {
            "fp32": accounting.activation_peak_bytes(cfg, 4),
            "fp16": accounting.activation_peak_bytes(cfg, 2),
        },
        "device_estimates": {key: e.model_dump() for key, e in estimates(cfg, fit, plan).items()},
        "int8_plan": int8_plan(plan).to_dict(),
        "int8_advice": int8_advice(cfg, plan, fit),
        "device_estimate_note": (
            f"{fit.label}: GPU time of one TensorRT call at batch 1, in ms; range = "
            f"x{low:.2f}..x{high:.2f} of the point (the 10th-90th percentiles of the fit's "
            "leave-one-out errors); keys ending in _graph replay a CUDA graph"
        ),
    }


INT8_PAYS = 1.03  # INT8 is worth its accuracy cost when estimated at least 3% faster than FP16


def int8_advice(cfg: DiTConfig, plan=None, fit: Fit | None = None, device: str = "orin-nano") -> str | None:
    """One line when INT8 cannot pay for this model on the device (estimated no faster than FP16 / INT8_PAYS,
    e.g. a small model whose time is TensorRT's per-kernel floor), else None."""
    from edgedit.cost.fit import estimate

    fp16, int8 = (
        estimate(cfg, device, p, fit=fit, plan=int8_plan(plan) if p == "int8" else plan).ms for p in ("fp16", "int8")
    )
    if fp16 >= INT8_PAYS * int8:
        return None
    return (
        f"INT8 does not pay for this model on an {device.replace('-', ' ').title()}: estimated {int8:.2f} ms per "
        f"call vs {fp16:.2f} ms in FP16 (calibrated kernel model, not a measurement); build FP16 instead"
    )
