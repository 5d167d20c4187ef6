"""Statistics of timed calls, in milliseconds. Torch-free.

A tail percentile is reported only when at least ten calls lie beyond it (p90 from 100 calls, p99
from 1,000): from three calls a "p90" is just the slowest call, and reads as a fact it is not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CALLS_BEYOND = 10  # calls needed beyond a percentile before it is reported


def enough_for(quantile: float, n: int) -> bool:
    return n * (1 - quantile) >= CALLS_BEYOND - 1e-9


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call over `n` timed calls; p90 / p99 are None with too few calls for them."""

    n: int
    min: float
    mean: float
    p50: float
    p90: float | None
    p99: float | None
    max: float
    std: float

    @classmethod
    def from_samples(cls, ms: np.ndarray) -> LatencyStats:
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return cls(
            len(ms),
            float(ms.min()),
            float(ms.mean()),
            p50,
            p90 if enough_for(0.9, len(ms)) else None,
            p99 if enough_for(0.99, len(ms)) else None,
            float(ms.max()),
            float(ms.std()),
        )

    def to_dict(self) -> dict:
        return asdict(self)
