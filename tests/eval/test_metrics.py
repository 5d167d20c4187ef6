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


def test_fid_trace_term_equals_the_general_square_root_and_stays_real_when_singular():
    from scipy import linalg

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((500, 6)), rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    general = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    # float64, 6x6 well-conditioned matrices: both routes agree to ~1e3 ulp of the traces (~1e-13 relative)
    assert fid(a, b) == pytest.approx(general, rel=1e-9)
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-9)  # Tr (S_a S_b)^1/2 = Tr (S_b S_a)^1/2
    few = rng.standard_normal((5, 64))  # 5 samples in 64 dimensions: rank-4 covariances
    value = fid(few, few + 0.1)
    assert np.isfinite(value) and value == pytest.approx(64 * 0.01, rel=1e-6)  # a pure mean shift


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_otherwise():
    rng = np.random.default_rng(1)
    same = kid(rng.standard_normal((400, 8)), rng.standard_normal((400, 8)), subsets=20, subset_size=200)
    other = kid(rng.standard_normal((400, 8)), rng.standard_normal((400, 8)) + 1, subsets=20, subset_size=200)
    assert abs(same[0]) < 3 * same[1] + 1e-3 and other[0] > 10 * abs(same[0])


def test_psnr():
    ref = np.linspace(-1, 1, 100)
    assert psnr_db(ref, ref) == float("inf")
    assert psnr_db(ref, ref + 0.02) == pytest.approx(20 * np.log10(2 / 0.02))
