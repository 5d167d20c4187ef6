"""Training objectives: what the trainer minimises. The teacher's is EDM's denoising loss; the
distillation objectives (output, TA, MI1) implement the same interface.

An objective gets the model, one global batch (identical on every rank) and the step's random
generator; it returns per-sample losses for the rows this rank owns. Drawing the randomness for
the whole global batch and slicing keeps a run identical across world sizes and resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgedit.diffusion.edm import edm_denoise
from edgedit.runtime.spec import EDM_SIGMA_DATA


@dataclass
class EDMLoss:
    """EDM's training loss (Karras et al. 2022, NVlabs/edm training/loss.py EDMLoss):
    ln(sigma) ~ N(P_mean, P_std^2), x = y + sigma n, loss = lambda(sigma) ||D(x; sigma) - y||^2
    with lambda = (sigma^2 + sd^2) / (sigma sd)^2, so that the raw network's target has unit weight."""

    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_data: float = EDM_SIGMA_DATA

    def __call__(self, model, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator,
                 rows: slice) -> torch.Tensor:
        n = images.shape[0]
        sigma = (torch.randn(n, generator=generator) * self.p_std + self.p_mean).exp()  # (N,) for the global batch
        noise = torch.randn(images.shape, generator=generator)
        sigma, noise, y = sigma[rows].to(images.device), noise[rows].to(images.device), images[rows]
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        denoised = edm_denoise(model, y + sigma.reshape(-1, 1, 1, 1) * noise, sigma,
                               labels[rows] if labels is not None else None, self.sigma_data)
        return weight * ((denoised - y) ** 2).flatten(1).mean(1)  # (rows,)
