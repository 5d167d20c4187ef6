"""What `edgedit models` reports for one configuration: exact size and compute, memory estimates and
the calibrated device latency estimates (JSON-ready). Torch-free."""

from __future__ import annotations

from typing import Any

from edgedit.contract.config import DiTConfig
from edgedit.cost import accounting
from edgedit.cost.calibration import Fit, active_fit, estimates
from edgedit.cost.kernels import dit_kernels, total_kernels


def summarize(cfg: DiTConfig, name: str | None = None, fit: Fit | None = None) -> dict[str, Any]:
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
        "activation_peak_bytes": {"fp32": accounting.activation_peak_bytes(cfg, 4),
                                  "fp16": accounting.activation_peak_bytes(cfg, 2)},
        "device_estimates": estimates(cfg, fit),
        "device_estimate_note": (f"{fit.label}: GPU time of one TensorRT call at batch 1, in ms; range = "
                                 f"x{low:.2f}..x{high:.2f} of the point (the 10th-90th percentiles of the fit's "
                                 "leave-one-out errors); keys ending in _graph replay a CUDA graph"),
    }
