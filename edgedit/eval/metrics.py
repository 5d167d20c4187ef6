"""Image and distribution metrics on numpy arrays. Torch-free.

FID (Heusel et al. 2017): ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussian fits
of two feature sets. KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial
kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets, unbiased for small sample counts.
"""

from __future__ import annotations

import numpy as np


def significant(value, digits: int = 6):
    """A metric as a file records it: `digits` significant digits (a KID of 1.35e-3 keeps its 1.35, which
    rounding to decimals would cut to 1e-3); integers as they are."""
    return value if isinstance(value, int) else float(f"{value:.{digits}g}")


def psnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10 log10(peak^2 / MSE), with peak the reference's value range."""
    mse = float(np.mean((reference.astype(np.float64) - test) ** 2))
    peak = float(reference.max() - reference.min())
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Tr (S_a S_b)^(1/2) is taken as Tr (S_a^(1/2) S_b S_a^(1/2))^(1/2), the same number (similar
    matrices), from two symmetric eigendecompositions: real and well defined for singular covariances
    (few samples), where the general matrix square root of the non-symmetric S_a S_b that pytorch-fid
    takes can turn complex or fail. Everything in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(_nonzero(w))) @ v.T
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(_nonzero(np.linalg.eigvalsh((middle + middle.T) / 2))).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def _nonzero(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with its rounding noise set to 0: below n eps max|w| they are zeros
    to working precision, and their square roots (sqrt(1e-16) = 1e-8 each) would otherwise add up."""
    return np.where(
        eigenvalues > len(eigenvalues) * np.finfo(np.float64).eps * np.abs(eigenvalues).max(initial=0), eigenvalues, 0.0
    )


def kid(
    a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over random subsets."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        values.append(
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
        )
    return float(np.mean(values)), float(np.std(values))
