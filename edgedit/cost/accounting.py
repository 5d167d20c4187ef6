"""Exact size and compute accounting of a DiT from its config alone. Torch-free.

* `parameter_shapes`: every tensor of the state_dict, in order, with its shape. Parameter
  counts and checkpoint validation derive from it (tests check it against the torch module for
  every preset).
* MACs: the multiply-accumulates of the matrix products (Linear, the patch convolution, the two
  attention products) of the kernels one network call runs (`edgedit.cost.kernels`): what torch's
  FlopCounterMode counts as FLOPs / 2 (tested for every preset).
* Estimates built on top, labelled as such: weight memory per precision, and a peak activation
  memory at batch 1 (the largest kernel's inputs and outputs plus the residual stream).
"""

from __future__ import annotations

from collections import OrderedDict

from edgedit.contract.config import FREQUENCY_EMBEDDING_SIZE, DiTConfig
from edgedit.contract.quantization import is_int8_weight
from edgedit.cost.kernels import dit_kernels


def parameter_shapes(cfg: DiTConfig) -> OrderedDict[str, tuple[int, ...]]:
    """The state_dict of `DiT(cfg)`: names and shapes, in the module's order."""
    D, p, R = cfg.hidden_size, cfg.patch_size, cfg.mlp_hidden
    shapes: OrderedDict[str, tuple[int, ...]] = OrderedDict()
    shapes["pos_embed"] = (1, cfg.num_patches, D)  # the model's own parameter comes first
    shapes["x_embedder.proj.weight"] = (D, cfg.in_channels, p, p)
    shapes["x_embedder.proj.bias"] = (D,)
    if not cfg.one_step:
        shapes["t_embedder.mlp.0.weight"] = (D, FREQUENCY_EMBEDDING_SIZE)
        shapes["t_embedder.mlp.0.bias"] = (D,)
        shapes["t_embedder.mlp.2.weight"] = (D, D)
        shapes["t_embedder.mlp.2.bias"] = (D,)
    if cfg.class_conditional:
        shapes["y_embedder.embedding_table.weight"] = (cfg.label_rows, D)
    for i in range(cfg.depth):
        b = f"blocks.{i}"
        if not cfg.conditioned:
            shapes[f"{b}.modulation"] = (1, 6 * D)
        shapes[f"{b}.attn.qkv.weight"] = (3 * D, D)
        shapes[f"{b}.attn.qkv.bias"] = (3 * D,)
        shapes[f"{b}.attn.proj.weight"] = (D, D)
        shapes[f"{b}.attn.proj.bias"] = (D,)
        shapes[f"{b}.mlp.fc1.weight"] = (R, D)
        shapes[f"{b}.mlp.fc1.bias"] = (R,)
        shapes[f"{b}.mlp.fc2.weight"] = (D, R)
        shapes[f"{b}.mlp.fc2.bias"] = (D,)
        if cfg.conditioned:
            shapes[f"{b}.adaLN_modulation.1.weight"] = (6 * D, D)
            shapes[f"{b}.adaLN_modulation.1.bias"] = (6 * D,)
    if not cfg.conditioned:
        shapes["final_layer.modulation"] = (1, 2 * D)
    shapes["final_layer.linear.weight"] = (p * p * cfg.out_channels, D)
    shapes["final_layer.linear.bias"] = (p * p * cfg.out_channels,)
    if cfg.conditioned:
        shapes["final_layer.adaLN_modulation.1.weight"] = (2 * D, D)
        shapes["final_layer.adaLN_modulation.1.bias"] = (2 * D,)
    return shapes


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def count_params(cfg: DiTConfig) -> int:
    """All parameters, the frozen pos_embed included (as DiT's reported counts)."""
    return sum(_numel(s) for s in parameter_shapes(cfg).values())


def weight_bytes(cfg: DiTConfig) -> dict[str, int]:
    """Weight memory: all-FP32, all-FP16, and INT8 as `edgedit quantize` does it (the block
    Linear weights in INT8, everything else in FP16)."""
    shapes = parameter_shapes(cfg)
    total = sum(_numel(s) for s in shapes.values())
    int8 = sum(_numel(s) * (1 if is_int8_weight(n) else 2) for n, s in shapes.items())
    return {"fp32": 4 * total, "fp16": 2 * total, "int8": int8}


def count_macs(cfg: DiTConfig) -> int:
    """Multiply-accumulates per image (matrix products only)."""
    return sum(k.flops * k.count for k in dit_kernels(cfg)) // 2


def macs_breakdown(cfg: DiTConfig) -> dict[str, int]:
    groups: dict[str, int] = {}
    for k in dit_kernels(cfg):
        if k.flops:
            groups[k.group] = groups.get(k.group, 0) + k.flops * k.count // 2
    return groups


def activation_peak_bytes(cfg: DiTConfig, bytes_per_element: int) -> int:
    """Estimate at batch 1: the largest kernel's activations (inputs and outputs) plus the residual
    stream alive beside it. A fused attention kernel never writes its T x T scores."""
    residual = cfg.num_patches * cfg.hidden_size
    return max(k.reads + k.writes + residual for k in dit_kernels(cfg)) * bytes_per_element
