"""Per-sample noise from integer seeds: the same seed gives the same z everywhere.

Sample k's noise depends only on its seed and the noise scheme, not on the batch it is drawn in or
on the backend, so the workstation, the teacher-pairs store and the device sampler all start from
identical z for the same seed. Both schemes draw numpy's standard normal (float32, ziggurat) from a
PCG64 stream (O'Neill 2014, "PCG: A family of simple fast space-efficient statistically good
algorithms for random number generation", XSL-RR 128/64; numpy.random.PCG64) of its own per seed:

- `pcg64-keyed` (the default): the stream's 128-bit state is set directly to
  K(s) = mix(s G + G) << 64 | mix(s G + 2G), with mix SplitMix64's finaliser and G =
  0x9E3779B97F4A7C15 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
  OOPSLA 2014), and its increment to the fixed odd INCREMENT below. One reused generator takes
  each seed's state in turn: about 5 us per image and nothing per call.
- `pcg64` (edgedit 0.1's): `numpy.random.PCG64(s)`, whose SeedSequence hashing costs about 10 us
  per seed. Files that name no scheme were made with it, so they keep their images.

Why not one vectorised counter-based draw for the whole batch (SplitMix64 words through
Box-Muller): measured on the development VM it needs about twenty numpy calls whatever the batch,
25 us at batch 1 against 7 us here, and is still slower at batch 64 (446 against 390 us).

Exports record their scheme in the sampler metadata (`edgedit.sampler` "noise") and pairs stores
in their settings; samplers read it from there.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from edgedit.contract.errors import EdgeditError
from edgedit.contract.schedules import NOISE_SCHEME, NOISE_SCHEMES

_GAMMA = 0x9E3779B97F4A7C15
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK = 2**64 - 1
INCREMENT = 0xDA3E39CB94B95BDB5851F42D4C957F2D  # odd: every seed's stream is one full-period LCG
_local = threading.local()  # one reusable generator per thread


def _mix(z: int) -> int:
    """SplitMix64's finaliser on a 64-bit integer."""
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def keyed_state(seed: int) -> int:
    """K(s): the 128-bit PCG64 state of seed s's stream (nearby seeds get unrelated states)."""
    return _mix((seed * _GAMMA + _GAMMA) & _MASK) << 64 | _mix((seed * _GAMMA + 2 * _GAMMA) & _MASK)


def _pcg64_keyed(seeds: list[int], shape: tuple[int, ...]) -> np.ndarray:
    if not hasattr(_local, "generator"):
        _local.generator = np.random.Generator(np.random.PCG64(0))
        _local.state = {
            "bit_generator": "PCG64",
            "state": {"state": 0, "inc": INCREMENT},
            "has_uint32": 0,
            "uinteger": 0,
        }  # reused: only its 'state' changes per seed
    generator, state = _local.generator, _local.state
    bit_generator, stream = generator.bit_generator, state["state"]
    out = np.empty((len(seeds), *shape), dtype=np.float32)
    for i, seed in enumerate(seeds):
        stream["state"] = keyed_state(seed)
        bit_generator.state = state
        generator.standard_normal(shape, dtype=np.float32, out=out[i])
    return out


def _pcg64(seeds: list[int], shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty((len(seeds), *shape), dtype=np.float32)
    for i, seed in enumerate(seeds):
        out[i] = np.random.Generator(np.random.PCG64(seed)).standard_normal(shape, dtype=np.float32)
    return out


def noise_from_seeds(seeds: Sequence[int] | np.ndarray, shape: Sequence[int], scheme: str = NOISE_SCHEME) -> np.ndarray:
    """(len(seeds), *shape) float32 unit-variance noise, one independent stream per seed."""
    seeds = seeds.tolist() if isinstance(seeds, np.ndarray) else [int(s) for s in seeds]
    if seeds and min(seeds) < 0:
        raise ValueError(f"seeds must be non-negative integers (got {min(seeds)})")
    shape = tuple(int(d) for d in shape)
    if scheme == "pcg64-keyed":
        return _pcg64_keyed(seeds, shape)
    if scheme == "pcg64":
        return _pcg64(seeds, shape)
    raise EdgeditError(f"unknown noise scheme {scheme!r}; this edgedit knows {', '.join(NOISE_SCHEMES)}")
