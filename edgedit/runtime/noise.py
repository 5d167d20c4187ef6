"""Per-sample noise from integer seeds: the same seed gives the same z everywhere.

Sample k's noise depends only on its seed (numpy's PCG64, standard normal, float32), not on the
batch it is drawn in or on the backend, so the workstation, the teacher-pairs store and the
device sampler all start from identical z for the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def noise_from_seeds(seeds: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """(len(seeds), *shape) float32 unit-variance noise, one independent stream per seed."""
    out = np.empty((len(seeds), *shape), dtype=np.float32)
    for i, seed in enumerate(seeds):
        if int(seed) < 0:
            raise ValueError(f"seeds must be non-negative integers (got {seed})")
        out[i] = np.random.Generator(np.random.PCG64(int(seed))).standard_normal(tuple(shape), dtype=np.float32)
    return out
