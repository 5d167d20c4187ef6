"""The diffusion schedules the contract names: EDM's noise levels and preconditioning constants
(Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models", as GET's
CIFAR-10 teacher pairs use them) and DiT's DDPM schedule (Peebles & Xie 2023,
facebookresearch/DiT). Torch-free: the samplers, the training objectives, the pairs store and the
ONNX metadata all take them from here."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from edgedit.contract.config import DiTConfig
from edgedit.contract.schema import Record

EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0
EDM_RHO = 7.0
EDM_SIGMA_DATA = 0.5
EDM_STEPS, EDM_SAMPLER = 18, "heun"  # 18 Heun steps = 35 network evaluations
DDPM_TRAIN_STEPS, DDPM_BETA_START, DDPM_BETA_END = 1000, 1e-4, 0.02

# Per-seed noise schemes (implemented in runtime/noise.py): checkpoints, exports and pairs stores
# record theirs, so a file keeps its images when the default changes.
NOISE_SCHEME = "pcg64-keyed"  # what new files use: a seed-keyed PCG64 state, no per-seed hashing
NOISE_UNRECORDED = "pcg64"  # what files that name no scheme were made with (edgedit 0.1)
NoiseScheme = Literal["pcg64-keyed", "pcg64"]
NOISE_SCHEMES = get_args(NoiseScheme)
MAX_SAMPLER_STEPS = 1000  # steps of one sampling run: EDM's 18 and DDIM's 50 are the usual ones


#################################################################################
#        The sampler of a model: one schema (ONNX metadata, pairs stores)       #
#################################################################################


class OneStepSampler(Record):
    type: Literal["one-step"]
    noise: NoiseScheme = NOISE_UNRECORDED


class EdmSampler(Record):
    type: Literal["edm"]
    preconditioning: Literal["in-graph"] = "in-graph"
    sigma_min: float = Field(gt=0, le=1e4)
    sigma_max: float = Field(gt=0, le=1e4)
    rho: float = Field(gt=0, le=100)
    sigma_data: float = Field(gt=0, le=100)
    steps: int = Field(ge=1, le=MAX_SAMPLER_STEPS)
    sampler: Literal["heun", "euler"]
    noise: NoiseScheme = NOISE_UNRECORDED

    @model_validator(mode="after")
    def ordered(self) -> EdmSampler:
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"need sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        return self


class DdpmSampler(Record):
    type: Literal["ddpm"]
    train_steps: int = Field(ge=2, le=100_000)
    beta_start: float = Field(gt=0, lt=1)
    beta_end: float = Field(gt=0, lt=1)
    steps: int = Field(ge=1, le=MAX_SAMPLER_STEPS)
    sampler: Literal["ddim"]
    noise: NoiseScheme = NOISE_UNRECORDED

    @model_validator(mode="after")
    def ordered(self) -> DdpmSampler:
        if not (self.beta_start < self.beta_end and self.steps <= self.train_steps):
            raise ValueError("need beta_start < beta_end and steps <= train_steps")
        return self


SamplerSpec = Annotated[OneStepSampler | EdmSampler | DdpmSampler, Field(discriminator="type")]


def sampler_spec(cfg: DiTConfig, noise: str = NOISE_SCHEME) -> OneStepSampler | EdmSampler | DdpmSampler:
    """How a model of `cfg` is sampled; `noise`: the scheme of the file it comes from (a checkpoint's)."""
    if cfg.diffusion == "one-step":
        return OneStepSampler(type="one-step", noise=noise)
    if cfg.diffusion == "edm":
        return EdmSampler(
            type="edm",
            sigma_min=EDM_SIGMA_MIN,
            sigma_max=EDM_SIGMA_MAX,
            rho=EDM_RHO,
            sigma_data=EDM_SIGMA_DATA,
            steps=EDM_STEPS,
            sampler=EDM_SAMPLER,
            noise=noise,
        )
    # facebookresearch/DiT: 1000 steps of linear betas 1e-4..0.02, epsilon prediction (+ variance channels);
    # sampled here with deterministic DDIM. Outputs are SD-VAE latents for official DiTs (no VAE here).
    return DdpmSampler(
        type="ddpm",
        train_steps=DDPM_TRAIN_STEPS,
        beta_start=DDPM_BETA_START,
        beta_end=DDPM_BETA_END,
        steps=50,
        sampler="ddim",
        noise=noise,
    )
