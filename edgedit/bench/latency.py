"""Latency of a callable: warm-up excluded, wall-clock per call with perf_counter_ns. Torch-free.

CPU backends run synchronously, so a host clock around the call measures it; GPU backends time
with CUDA events (the TensorRT backend).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call over `n` timed calls."""

    n: int
    min: float
    mean: float
    p50: float
    p90: float
    p99: float
    max: float
    std: float

    @classmethod
    def from_samples(cls, ms: np.ndarray) -> LatencyStats:
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(ms.min()), float(ms.mean()), float(p50), float(p90), float(p99), float(ms.max()),
                   float(ms.std()))

    def to_dict(self) -> dict:
        return asdict(self)


class MeasurementInterrupted(KeyboardInterrupt):
    """Ctrl-C during the timed calls: carries the statistics of the calls measured so far (or None)."""

    def __init__(self, stats: LatencyStats | None):
        super().__init__()
        self.stats = stats


def measure(call: Callable[[], object], warmup: int = 5, iters: int | None = None, duration_s: float | None = None,
            min_iters: int = 5, on_sample: Callable[[float], None] | None = None) -> LatencyStats:
    """Time `call()` after `warmup` untimed calls, for `iters` calls or until `duration_s` has passed
    (at least `min_iters`). `on_sample(ms)` follows progress; Ctrl-C raises MeasurementInterrupted."""
    if (iters is None) == (duration_s is None):
        raise ValueError("give exactly one of iters and duration_s")
    for _ in range(warmup):
        call()
    samples: list[float] = []
    deadline = None if duration_s is None else time.perf_counter_ns() + duration_s * 1e9
    try:
        while True:
            start = time.perf_counter_ns()
            call()
            end = time.perf_counter_ns()
            samples.append((end - start) / 1e6)
            if on_sample is not None:
                on_sample(samples[-1])
            if iters is not None and len(samples) >= iters:
                break
            if deadline is not None and end >= deadline and len(samples) >= min_iters:
                break
    except KeyboardInterrupt:
        raise MeasurementInterrupted(LatencyStats.from_samples(np.asarray(samples)) if samples else None) from None
    return LatencyStats.from_samples(np.asarray(samples))
