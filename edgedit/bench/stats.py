"""Statistics of timed calls, in milliseconds. Torch-free.

A tail percentile is reported only when at least ten calls lie beyond it (p90 from 100 calls, p99
from 1,000): from three calls a "p90" is just the slowest call, and reads as a fact it is not.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgedit.contract.schema import Record

CALLS_BEYOND = 10  # calls needed beyond a percentile before it is reported


def enough_for(quantile: float, n: int) -> bool:
    return n * (1 - quantile) >= CALLS_BEYOND - 1e-9


class LatencyStats(Record):
    """Milliseconds per call over `n` timed calls; p90 / p99 are None with too few calls for them.
    The `latency_ms` / `gpu_ms` of a bench record."""

    n: int = Field(ge=1)
    min: float = Field(ge=0)
    mean: float = Field(gt=0)  # throughput and ratios divide by these: a timed call takes time
    p50: float = Field(gt=0)
    p90: float | None = Field(ge=0)
    p99: float | None = Field(ge=0)
    max: float = Field(ge=0)
    std: float = Field(ge=0)

    @classmethod
    def from_samples(cls, ms: np.ndarray) -> LatencyStats:
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return cls(
            n=len(ms),
            min=float(ms.min()),
            mean=float(ms.mean()),
            p50=p50,
            p90=p90 if enough_for(0.9, len(ms)) else None,
            p99=p99 if enough_for(0.99, len(ms)) else None,
            max=float(ms.max()),
            std=float(ms.std()),
        )
