"""DiT: a diffusion transformer with adaLN-Zero conditioning.

Architecturally identical to facebookresearch/DiT `models.py` (Peebles & Xie, 2023), written
without timm: the same attribute names, Sequential indices, fused q|k|v packing, six-way
modulation chunk order, [cos, sin] timestep features, null label row and frozen [sin, cos]
2-D position embedding, so an official checkpoint loads with `strict=True` and gives the same
outputs. References:
  DiT:  https://github.com/facebookresearch/DiT/blob/main/models.py
  GLIDE timestep embedding: https://github.com/openai/glide-text2im/blob/main/glide_text2im/nn.py
  MAE position embedding:   https://github.com/facebookresearch/mae/blob/main/util/pos_embed.py
  GET one-step generator:   https://github.com/locuslab/get

Two additions for edge students, both off for official configs:
  * one-step generator mode (GET-style): the input is unit-variance noise z, the output an
    image, and there is no timestep embedder;
  * without any conditioning vector (an unconditional one-step generator) adaLN would map a
    constant to a constant, so each block learns its six modulation vectors directly.

Written for TensorRT: attention scales q before Q·Kᵀ and uses no mask (Myelin fuses it into one
MHA kernel); norms are plain nn.LayerNorm (exported as one LayerNormalization each).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from edgedit.contract.config import DiTConfig
from edgedit.contract.schedules import NOISE_SCHEME


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)  # (N, T, D) with (N, D) broadcast over T


#################################################################################
#               Embedding Layers for Patches, Timesteps and Class Labels        #
#################################################################################


class PatchEmbed(nn.Module):
    """Image to tokens: a p x p stride-p convolution, tokens in row-major order (as timm's PatchEmbed)."""

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, C, H, W) -> (N, D, h, w) -> (N, T, D)


class TimestepEmbedder(nn.Module):
    """Embeds scalar timesteps into vectors: sinusoidal features then a 2-layer MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000) -> torch.Tensor:
        """(N,) possibly fractional timesteps -> (N, dim) features, [cos, sin] in that order."""
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
        args = t[:, None].float() * freqs[None]  # (N, half)
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, 2 * half)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return embedding

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size))  # (N, D)


class LabelEmbedder(nn.Module):
    """Embeds class labels; with dropout > 0 an extra "null" row (index num_classes) serves CFG."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        use_cfg_embedding = dropout_prob > 0
        self.embedding_table = nn.Embedding(num_classes + use_cfg_embedding, hidden_size)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def token_drop(self, labels: torch.Tensor, force_drop_ids: torch.Tensor | None = None) -> torch.Tensor:
        if force_drop_ids is None:
            drop_ids = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
        else:
            drop_ids = force_drop_ids == 1
        return torch.where(drop_ids, self.num_classes, labels)

    def forward(self, labels: torch.Tensor, train: bool, force_drop_ids: torch.Tensor | None = None):
        if (train and self.dropout_prob > 0) or force_drop_ids is not None:
            labels = self.token_drop(labels, force_drop_ids)  # important: label dropout only in training
        return self.embedding_table(labels)  # (N, D)


#################################################################################
#                                 Core DiT Model                                #
#################################################################################


class Attention(nn.Module):
    """Multi-head self-attention with fused qkv (timm's layout: q|k|v, then heads)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, T, D = x.shape
        qkv = self.qkv(x).reshape(N, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, N, h, T, hd)
        q, k, v = qkv.unbind(0)  # (N, h, T, hd) each
        # Scale q before Q·Kᵀ, no mask: the pattern TensorRT fuses into one MHA kernel.
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (N, h, T, T)
        x = (attn @ v).transpose(1, 2).reshape(N, T, D)  # (N, T, D)
        return self.proj(x)


class Mlp(nn.Module):
    """fc1 -> GELU (tanh approximation, as DiT) -> fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=True)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DiTBlock(nn.Module):
    """A DiT block with adaptive layer norm zero (adaLN-Zero) conditioning."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_hidden: int, conditioned: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, mlp_hidden)
        if conditioned:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))
        else:  # no conditioning vector: learn the (constant) modulation directly
            self.modulation = nn.Parameter(torch.zeros(1, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        mod = self.adaLN_modulation(c) if c is not None else self.modulation  # (N or 1, 6D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x  # (N, T, D)


class FinalLayer(nn.Module):
    """adaLN-modulated norm, then a linear map from each token to its p x p x C_out patch."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int, conditioned: bool):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        if conditioned:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))
        else:
            self.modulation = nn.Parameter(torch.zeros(1, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        mod = self.adaLN_modulation(c) if c is not None else self.modulation  # (N or 1, 2D)
        shift, scale = mod.chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (N, T, p * p * C_out)


class DiT(nn.Module):
    """Diffusion model with a Transformer backbone, or a one-step generator built from the same parts."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        # How seeds become noise for its samples: checkpoint.load_model sets the file's scheme, so that
        # sampling and exports keep a trained file's images; new models use the current one.
        self.noise = NOISE_SCHEME
        D = config.hidden_size
        self.in_channels = config.in_channels
        self.out_channels = config.out_channels
        self.patch_size = config.patch_size
        self.num_heads = config.num_heads

        self.x_embedder = PatchEmbed(config.patch_size, config.in_channels, D)
        if not config.one_step:
            self.t_embedder = TimestepEmbedder(D)
        if config.class_conditional:
            self.y_embedder = LabelEmbedder(config.num_classes, D, config.class_dropout_prob)
        # Fixed sin-cos embedding; a frozen Parameter (not a buffer) so the state_dict matches DiT's.
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches, D), requires_grad=False)
        self.blocks = nn.ModuleList(
            [DiTBlock(D, config.num_heads, config.mlp_hidden, config.conditioned) for _ in range(config.depth)]
        )
        self.final_layer = FinalLayer(D, config.patch_size, config.out_channels, config.conditioned)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def _basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)

        self.apply(_basic_init)

        pos_embed = get_2d_sincos_pos_embed(self.config.hidden_size, self.config.grid_size)
        self.pos_embed.data.copy_(torch.from_numpy(pos_embed).float().unsqueeze(0))

        # Initialize patch_embed like nn.Linear (instead of nn.Conv2d):
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))

        if self.config.class_conditional:
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        if not self.config.one_step:
            nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
            nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)

        # adaLN-Zero: every block starts as the identity, and the output starts at zero.
        for layer in [*self.blocks, self.final_layer]:
            if self.config.conditioned:
                nn.init.constant_(layer.adaLN_modulation[-1].weight, 0)
                nn.init.constant_(layer.adaLN_modulation[-1].bias, 0)
            else:
                nn.init.constant_(layer.modulation, 0)
        nn.init.constant_(self.final_layer.linear.weight, 0)
        nn.init.constant_(self.final_layer.linear.bias, 0)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, p * p * C) -> (N, C, H, W); within a token: channel fastest, then column, then row."""
        c, p, h = self.out_channels, self.patch_size, self.config.grid_size
        x = x.reshape(x.shape[0], h, h, p, p, c)  # (N, h, w, p, q, C)
        x = x.permute(0, 5, 1, 3, 2, 4)  # (N, C, h, p, w, q), DiT's einsum 'nhwpqc->nchpwq'
        return x.reshape(x.shape[0], c, h * p, h * p)

    def condition(self, t: torch.Tensor | None, y: torch.Tensor | None) -> torch.Tensor | None:
        """The conditioning vector c = t_emb + y_emb (N, D), or None for an unconditional generator."""
        cfg = self.config
        if cfg.one_step and t is not None:
            raise ValueError("a one-step generator takes no timestep")
        if not cfg.one_step and t is None:
            raise ValueError("a denoiser needs timesteps t of shape (N,)")
        if cfg.class_conditional and y is None:
            raise ValueError(f"a class-conditional model needs labels y of shape (N,) in [0, {cfg.num_classes})")
        if not cfg.class_conditional and y is not None:
            raise ValueError("an unconditional model takes no labels")
        c = None if cfg.one_step else self.t_embedder(t)  # (N, D)
        if cfg.class_conditional:
            y_emb = self.y_embedder(y, self.training)  # (N, D)
            c = y_emb if c is None else c + y_emb
        return c

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        *,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """
        x: (N, C, H, W) noisy input (denoiser) or unit-variance noise z (one-step generator)
        t: (N,) diffusion timesteps, possibly fractional (denoisers only)
        y: (N,) int64 class labels (class-conditional models only)
        return_features: also return every block's output, a list of depth tensors (N, T, D)
        """
        x = self.x_embedder(x) + self.pos_embed  # (N, T, D), where T = H * W / patch_size ** 2
        c = self.condition(t, y)  # (N, D) or None
        features = []
        for block in self.blocks:
            x = block(x, c)  # (N, T, D)
            if return_features:
                features.append(x)
        x = self.final_layer(x, c)  # (N, T, patch_size ** 2 * out_channels)
        x = self.unpatchify(x)  # (N, out_channels, H, W)
        return (x, features) if return_features else x

    def num_params(self) -> int:
        """All parameters, the frozen pos_embed included (as DiT's reported counts)."""
        return sum(p.numel() for p in self.parameters())


#################################################################################
#                   Sine/Cosine Positional Embedding Functions                  #
#################################################################################
# After https://github.com/facebookresearch/mae/blob/main/util/pos_embed.py


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: int) -> np.ndarray:
    """(grid_size**2, embed_dim) float64. The meshgrid puts w first: the first half of the channels
    encodes the column, the second half the row."""
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0)  # here w goes first
    grid = grid.reshape([2, 1, grid_size, grid_size])
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])  # (H*W, D/2)
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])  # (H*W, D/2)
    return np.concatenate([emb_h, emb_w], axis=1)  # (H*W, D)


def get_1d_sincos_pos_embed_from_grid(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """(M,) positions -> (M, embed_dim) features, [sin, cos] in that order."""
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega  # (D/2,)
    out = np.einsum("m,d->md", pos.reshape(-1), omega)  # (M, D/2), outer product
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)  # (M, D)
