"""Adversarial fine-tuning of a one-step student: the pair loss plus a GAN term against real images.

Output distillation learns the teacher's map, errors included, so it is bounded by the teacher. The
one-step students that beat their teachers add a term that looks at the distribution rather than at
the pairs (adversarial diffusion distillation, Sauer et al. 2023; DMD2, Yin et al. 2024, whose GAN
term on real data is the part used here). The student S keeps its pair loss and also learns to fool
a discriminator D that tells real training images from S's samples:

    L_S = image_loss(S(z, y), x) + adv_weight * E[-D(a(S(z, y)), y)]
    L_D = E[relu(1 - D(a(x_real), y_real))] + E[relu(1 + D(a(S(z, y)), y))]       (hinge loss)

a(.) adds Gaussian noise of a random level sigma (log-uniform in [sigma_min, sigma_max]) to both
real and generated images, as instance noise / Diffusion-GAN (Wang et al. 2023) do, so that D cannot
separate the two on pixel noise and does not memorise a small real set. D is a projection
discriminator (Miyato & Koyama 2018) of spectrally normalised convolutions (Miyato et al. 2018).
Real images come from the training split only: the held-out split that `edgedit eval` measures FID
against is never seen. D is training-only: it lives in the objective, never in the saved student.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from edgedit.contract.errors import EdgeditError
from edgedit.models.dit import DiT
from edgedit.train.distill import OutputDistillation


class Discriminator(nn.Module):
    """(N, C, H, W) images (+ (N,) labels) -> (N,) logits. Stride-2 4x4 convolutions halve the
    resolution and double the width until 4x4 (or the image's own size when smaller), then a sum over
    positions, a linear read-out and, for conditional data, the projection <embed(y), h>."""

    def __init__(self, in_channels: int, input_size: int, num_classes: int, width: int = 32):
        super().__init__()
        layers, channels, size = (
            [spectral_norm(nn.Conv2d(in_channels, width, 3, padding=1)), nn.LeakyReLU(0.2)],
            width,
            input_size,
        )
        while size > 4 and size % 2 == 0:
            layers += [spectral_norm(nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            channels, size = 2 * channels, size // 2
        self.features = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(channels, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, channels)) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).sum((2, 3))  # (N, channels)
        logits = self.head(h).squeeze(1)  # (N,)
        if self.embed is not None and y is not None:
            logits = logits + (self.embed(y) * h).sum(1)
        return logits


class AdversarialDistillation(OutputDistillation):
    """Batch: z, image, label as for output distillation; `real` (M, C, H, W) and `real_labels` (M,)
    are the real training images, held here (not in the batch: they are not aligned with the pairs)
    and drawn with the step's generator, so a resumed run draws the same ones."""

    def __init__(
        self,
        model: DiT,
        real: torch.Tensor,
        real_labels: torch.Tensor | None,
        real_classes: int,
        loss: str = "pseudo-huber",
        adv_weight: float = 1.0,
        disc_lr: float = 2e-4,
        disc_width: int = 32,
        sigma_min: float = 0.01,
        sigma_max: float = 0.5,
    ):
        super().__init__(model, loss)
        cfg = model.config
        if tuple(real.shape[1:]) != (cfg.in_channels, cfg.input_size, cfg.input_size):
            raise EdgeditError(
                f"the real images are {'x'.join(map(str, real.shape[1:]))}, the student makes "
                f"{cfg.in_channels}x{cfg.input_size}x{cfg.input_size}"
            )
        if cfg.class_conditional and (real_labels is None or real_classes != cfg.num_classes):
            raise EdgeditError(
                f"the student makes {cfg.num_classes} classes, the real images have "
                f"{real_classes if real_labels is not None else 'no'} labels"
            )
        if not (math.isfinite(adv_weight) and adv_weight >= 0):
            raise EdgeditError(f"adv_weight must be a finite number >= 0 (got {adv_weight})")
        if not 0 < sigma_min <= sigma_max:
            raise EdgeditError(f"need 0 < sigma_min <= sigma_max (got {sigma_min}, {sigma_max})")
        self.real, self.real_labels = real, real_labels if cfg.class_conditional else None  # not state: data
        self.discriminator = Discriminator(cfg.in_channels, cfg.input_size, cfg.num_classes, disc_width)
        if not (math.isfinite(disc_lr) and 0 < disc_lr <= 1):
            raise EdgeditError(f"disc_lr must be in (0, 1] (got {disc_lr})")
        self.adv_weight, self.disc_lr, self.sigma_min, self.sigma_max = adv_weight, disc_lr, sigma_min, sigma_max

    def discriminator_optimizer(self) -> torch.optim.Optimizer:
        """Adam with beta1 = 0, as GANs train their discriminators (StyleGAN2, BigGAN)."""
        return torch.optim.Adam(self.discriminator.parameters(), lr=self.disc_lr, betas=(0.0, 0.99))

    def _noised(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """a(x) = x + sigma n, sigma log-uniform per sample; drawn on the CPU generator like all step noise."""
        n = images.shape[0]
        u = torch.rand(n, generator=generator)
        sigma = (math.log(self.sigma_min) + u * math.log(self.sigma_max / self.sigma_min)).exp()
        noise = torch.randn(images.shape, generator=generator)
        return images + (sigma.reshape(-1, 1, 1, 1) * noise).to(images.device)

    def discriminator_loss(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator, rows: slice
    ) -> torch.Tensor:
        """Per-sample hinge loss of D on this step's real draw and the student's current samples."""
        self.discriminator.requires_grad_(True)
        z, y = batch["z"][rows], self.labels(batch, rows)
        with torch.no_grad():
            fake = self.model(z, y=y)
        pick = torch.randint(len(self.real), (z.shape[0],), generator=generator)
        real = self.real[pick].to(z.device)
        real_y = self.real_labels[pick].to(z.device) if self.real_labels is not None else None
        d_real = self.discriminator(self._noised(real, generator), real_y)
        d_fake = self.discriminator(self._noised(fake, generator), y)
        return F.relu(1 - d_real) + F.relu(1 + d_fake)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator, rows: slice) -> torch.Tensor:
        self.discriminator.requires_grad_(False)  # the student's step moves only the student
        z, y = batch["z"][rows], self.labels(batch, rows)
        pred = self.model(z, y=y)
        adversarial = -self.discriminator(self._noised(pred, generator), y)
        return self.image_loss(pred, batch["image"][rows]) + self.adv_weight * adversarial
