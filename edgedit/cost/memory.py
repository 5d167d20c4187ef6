"""What a job will need in memory, estimated before anything is allocated, and the refusal when the
machine does not have it. Torch-free: only the config and the batch.

Training in FP32 with AdamW keeps, per parameter, the weight, its gradient, two moments and the EMA
copy (5 x 4 bytes). Autograd keeps per block and sample about T x (14 D + 2 M) activations (norms,
modulations, q/k/v, projections, the MLP's two wide tensors) and 2 H T^2 for attention
probabilities (the math attention path on CPU materialises them). These are estimates, about right
in size; the refusal only triggers for jobs that cannot fit by a wide margin of that.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgedit.contract import device
from edgedit.contract.config import DiTConfig
from edgedit.contract.errors import EdgeditError
from edgedit.cost.accounting import count_params


@dataclass(frozen=True)
class MemoryEstimate:
    parts: dict[str, int]  # bytes by what needs them

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        return f"about {gb(self.total)} (" + ", ".join(f"{k} {gb(v)}" for k, v in self.parts.items() if v) + ")"


def gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**28 else f"{n / 2**20:.0f} MB"


def block_activations(cfg: DiTConfig) -> int:
    """Elements autograd keeps for one block and one sample."""
    t, d, m = cfg.num_patches, cfg.hidden_size, cfg.mlp_hidden
    return t * (14 * d + 2 * m) + 2 * cfg.num_heads * t * t


def training_memory(cfg: DiTConfig, batch: int, data_bytes: int = 0) -> MemoryEstimate:
    params = count_params(cfg)
    return MemoryEstimate(
        {
            "weights, gradients, AdamW and EMA": 20 * params,
            f"activations at batch {batch}": 4 * batch * cfg.depth * block_activations(cfg),
            "training data": data_bytes,
        }
    )


def inference_memory(cfg: DiTConfig, batch: int) -> MemoryEstimate:
    """FP32 weights and the widest layer's activations (nothing is kept for a backward pass)."""
    widest = max(
        cfg.num_patches * (3 * cfg.hidden_size + cfg.mlp_hidden) + cfg.num_heads * cfg.num_patches**2,
        cfg.num_patches * cfg.hidden_size * 4,
    )
    return MemoryEstimate({"weights": 4 * count_params(cfg), f"activations at batch {batch}": 4 * batch * widest})


def require_memory(estimate: MemoryEstimate, job: str, fix: str, available: int | None = None) -> None:
    """Refuse `job` when its estimate exceeds the memory this machine has available."""
    available = device.available_memory_bytes() if available is None else available
    if available is not None and estimate.total > available:
        raise EdgeditError(f"{job} needs {estimate.describe()}; this machine has {gb(available)} available; {fix}")
