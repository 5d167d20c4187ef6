"""EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models").

Preconditioning wraps a raw network F into the denoiser
    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))
with c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4 and sd = sigma_data = 0.5,
as NVlabs/edm `training/networks.py` EDMPrecond. The noise schedule and the samplers are in
the torch-free `edgedit.runtime.samplers`.
"""

from __future__ import annotations

import torch

from edgedit.contract.schedules import EDM_SIGMA_DATA


def edm_denoise(
    net, x: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor | None = None, sigma_data: float = EDM_SIGMA_DATA
) -> torch.Tensor:
    """x: (N, C, H, W) noisy images; sigma: (N,) noise levels; y: (N,) labels or None -> (N, C, H, W)."""
    sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)  # (N, 1, 1, 1)
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / (sigma**2 + sigma_data**2).sqrt()
    c_in = 1 / (sigma**2 + sigma_data**2).sqrt()
    c_noise = sigma.log().flatten() / 4  # (N,)
    return c_skip * x + c_out * net(c_in * x, c_noise, y)
