import numpy as np
import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.contract.schedules import NOISE_SCHEME, NOISE_SCHEMES, NOISE_UNRECORDED
from edgedit.runtime.noise import INCREMENT, keyed_state, noise_from_seeds

MASK64, MASK128 = 2**64 - 1, 2**128 - 1
GAMMA = 0x9E3779B97F4A7C15
PCG_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645  # O'Neill's 128-bit LCG multiplier


def mix(z: int) -> int:  # SplitMix64's finaliser
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def pcg64_outputs(state: int, increment: int, count: int) -> list[int]:
    """PCG64 (XSL-RR 128/64) written out: step the LCG, then output from the new state."""
    out = []
    for _ in range(count):
        state = (state * PCG_MULTIPLIER + increment) & MASK128
        xored, rotation = ((state >> 64) ^ state) & MASK64, state >> 122
        out.append(((xored >> rotation) | (xored << (64 - rotation))) & MASK64)
    return out


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 - 1])
def test_keyed_noise_is_the_documented_scheme(seed):
    """The state K(s) and the stream written out independently; the draw is numpy's standard normal
    (float32 ziggurat) on that stream, the same as a PCG64 generator given that state."""
    state = mix((seed * GAMMA + GAMMA) & MASK64) << 64 | mix((seed * GAMMA + 2 * GAMMA) & MASK64)
    assert keyed_state(seed) == state
    bit_generator = np.random.PCG64()
    bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": INCREMENT},
        "has_uint32": 0,
        "uinteger": 0,
    }
    assert [int(v) for v in bit_generator.random_raw(5)] == pcg64_outputs(state, INCREMENT, 5)
    bit_generator.state = {**bit_generator.state, "state": {"state": state, "inc": INCREMENT}}
    expected = np.random.Generator(bit_generator).standard_normal((1, 3, 3), dtype=np.float32)
    assert np.array_equal(noise_from_seeds([seed], (1, 3, 3), "pcg64-keyed")[0], expected)
    assert INCREMENT % 2 == 1


def test_pcg64_noise_is_numpys_generator_per_seed():
    got = noise_from_seeds([3, 8], (2, 4), "pcg64")
    for row, seed in zip(got, (3, 8)):
        assert np.array_equal(row, np.random.Generator(np.random.PCG64(seed)).standard_normal((2, 4), np.float32))


@pytest.mark.parametrize("scheme", NOISE_SCHEMES)
def test_a_seed_gives_the_same_noise_in_any_batch(scheme):
    alone = noise_from_seeds([42], (3, 8, 8), scheme)
    for batch in ([7, 42, 9], [7, 42, 9, *range(100, 110), 2**63 - 1]):  # a few seeds, and a batch
        drawn = noise_from_seeds(batch, (3, 8, 8), scheme)
        assert alone.dtype == drawn.dtype == np.float32 and drawn.shape == (len(batch), 3, 8, 8)
        assert np.array_equal(alone[0], drawn[1]) and not np.array_equal(drawn[0], drawn[2])
        assert np.array_equal(drawn[-1], noise_from_seeds([batch[-1]], (3, 8, 8), scheme)[0])


@pytest.mark.parametrize("scheme", NOISE_SCHEMES)
def test_noise_is_unit_variance_gaussian_and_seeds_are_independent(scheme):
    z = noise_from_seeds(range(512), (1, 16, 16), scheme).reshape(512, -1)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(z**4) - 3) < 0.1  # Gaussian kurtosis
    # Neighbouring seeds and neighbouring elements are uncorrelated (|r| ~ 1/sqrt(512 * 256)).
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 0.02
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 0.02


def test_every_scheme_the_contract_names_is_drawn_and_no_other():
    assert NOISE_SCHEMES == ("pcg64-keyed", "pcg64") and NOISE_SCHEME == "pcg64-keyed" and NOISE_UNRECORDED == "pcg64"
    draws = [noise_from_seeds([0, 1], (1, 2, 2), scheme) for scheme in NOISE_SCHEMES]
    assert not np.array_equal(draws[0], draws[1])  # two schemes, two draws of the same seeds
    with pytest.raises(EdgeditError):
        noise_from_seeds([0], (1, 2, 2), "pcg32")


def test_bad_seeds_and_schemes_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        noise_from_seeds([-1], (2,))
    with pytest.raises(EdgeditError, match="unknown noise scheme 'philox'"):
        noise_from_seeds([1], (2,), "philox")
