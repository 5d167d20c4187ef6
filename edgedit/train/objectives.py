"""Training objectives: what the trainer minimises, as modules.

An objective holds the network being trained (`.model`: its EMA is what gets saved) and any
auxiliary, training-only parameters (projections, readout heads), so that the optimizer,
checkpoints and DDP's gradient synchronisation see them while the saved student never does.
`forward(batch, generator, rows)` gets one global batch (identical on every rank) and the step's
random generator, and returns per-sample losses for the rows this rank owns: drawing randomness
for the whole global batch and slicing keeps a run identical across world sizes and resumes.
The teacher's objective is EDM's; the distillation objectives are in edgedit.train.distill.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from edgedit.contract.schedules import EDM_SIGMA_DATA
from edgedit.models.edm import edm_denoise


class EDMObjective(nn.Module):
    """EDM's training loss (Karras et al. 2022, NVlabs/edm training/loss.py EDMLoss):
    ln(sigma) ~ N(P_mean, P_std^2), x = y + sigma n, loss = lambda(sigma) ||D(x; sigma) - y||^2
    with lambda = (sigma^2 + sd^2) / (sigma sd)^2, so that the raw network's target has unit weight.
    Batch: image (N, C, H, W) in [-1, 1], label (N,) when class-conditional."""

    def __init__(self, model: nn.Module, p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = EDM_SIGMA_DATA):
        super().__init__()
        self.model = model
        self.p_mean, self.p_std, self.sigma_data = p_mean, p_std, sigma_data

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator, rows: slice) -> torch.Tensor:
        images = batch["image"]
        n = images.shape[0]
        sigma = (torch.randn(n, generator=generator) * self.p_std + self.p_mean).exp()  # (N,) for the global batch
        noise = torch.randn(images.shape, generator=generator)
        sigma, noise, y = sigma[rows].to(images.device), noise[rows].to(images.device), images[rows]
        labels = batch["label"][rows] if "label" in batch and self.model.config.class_conditional else None
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        denoised = edm_denoise(self.model, y + sigma.reshape(-1, 1, 1, 1) * noise, sigma, labels, self.sigma_data)
        return weight * ((denoised - y) ** 2).flatten(1).mean(1)  # (rows,)
