import numpy as np
import pytest

from edgedit.eval.metrics import fid, kid, psnr_db


def test_fid_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 4))
    b = rng.standard_normal((20000, 4)) * 2 + 1  # mean shift 1 per dim, std 2
    # ||mu||^2 = 4; Tr(I + 4I - 2*sqrt(4I)) = 4 * (1 + 4 - 4) = 4
    assert fid(a, b) == pytest.approx(8.0, rel=0.03)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_otherwise():
    rng = np.random.default_rng(1)
    same = kid(rng.standard_normal((400, 8)), rng.standard_normal((400, 8)), subsets=20, subset_size=200)
    other = kid(rng.standard_normal((400, 8)), rng.standard_normal((400, 8)) + 1, subsets=20, subset_size=200)
    assert abs(same[0]) < 3 * same[1] + 1e-3 and other[0] > 10 * abs(same[0])


def test_psnr():
    ref = np.linspace(-1, 1, 100)
    assert psnr_db(ref, ref) == float("inf")
    assert psnr_db(ref, ref + 0.02) == pytest.approx(20 * np.log10(2 / 0.02))
