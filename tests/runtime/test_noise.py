import numpy as np
import pytest

from edgedit.runtime.noise import noise_from_seeds


def test_a_seed_gives_the_same_noise_in_any_batch():
    alone = noise_from_seeds([42], (3, 8, 8))
    batch = noise_from_seeds([7, 42, 9], (3, 8, 8))
    assert alone.dtype == np.float32 and batch.shape == (3, 3, 8, 8)
    assert np.array_equal(alone[0], batch[1])
    assert not np.array_equal(batch[0], batch[2])


def test_noise_is_unit_variance_gaussian():
    z = noise_from_seeds(range(64), (3, 16, 16))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


def test_negative_seeds_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        noise_from_seeds([-1], (2,))
