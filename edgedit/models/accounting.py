"""Exact size and compute accounting of a DiT from its config alone. Torch-free.

* `parameter_shapes`: every tensor of the state_dict, in order, with its shape. Parameter
  counts and checkpoint validation derive from it (tests check it against the torch module).
* `layer_ops`: the network as a list of operations with MACs and the elements each one reads
  and writes, per image. MACs count the multiply-accumulates of matrix products (Linear,
  the patch convolution, the two attention products): what torch's FlopCounterMode counts as
  FLOPs / 2. Norms, activations and residual adds are kept as memory-only operations.
* Estimates built on top, labelled as such: weight memory per precision, a peak activation
  memory at batch 1, and a per-operation roofline latency on a Jetson Orin Nano.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from edgedit.config import DiTConfig
from edgedit.hardware import DEVICES, DeviceSpec

FREQUENCY_EMBEDDING_SIZE = 256  # DiT's sinusoidal timestep features

# Linear weights that `edgedit quantize` turns into INT8 by default; embedders, adaLN, the final
# layer and the attention products stay in high precision (the sensitive parts of a DiT).
QUANTIZED_LINEARS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")

LATENCY_NOTE = (
    "roofline estimate, not a measurement: each operation costs max(compute at dense peak, "
    "bytes at DRAM bandwidth), summed; no kernel-launch overhead, no fusion, batch 1"
)


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


def is_quantized_weight(name: str) -> bool:
    return name.startswith("blocks.") and name.endswith(".weight") and any(f".{q}." in name for q in QUANTIZED_LINEARS)


def weight_bytes(cfg: DiTConfig) -> dict[str, int]:
    """Weight memory: all-FP32, all-FP16, and INT8 as `edgedit quantize` does it (the block
    Linear weights in INT8, everything else in FP16)."""
    shapes = parameter_shapes(cfg)
    total = sum(_numel(s) for s in shapes.values())
    int8 = sum(_numel(s) * (1 if is_quantized_weight(n) else 2) for n, s in shapes.items())
    return {"fp32": 4 * total, "fp16": 2 * total, "int8": int8}


#################################################################################
#                                 Operations                                    #
#################################################################################


@dataclass(frozen=True)
class Op:
    """One operation for one image. `repeat` > 1 for the per-block operations."""

    name: str
    group: str  # what the MACs are reported under
    macs: int = 0
    weights: int = 0  # parameter elements read
    reads: int = 0  # activation elements read
    writes: int = 0  # activation elements written
    repeat: int = 1
    quantized: bool = False  # INT8 in the default `edgedit quantize` recipe


def layer_ops(cfg: DiTConfig) -> list[Op]:
    T, D, R, H = cfg.num_patches, cfg.hidden_size, cfg.mlp_hidden, cfg.num_heads
    P2 = cfg.patch_size**2
    F = FREQUENCY_EMBEDDING_SIZE
    L = cfg.depth
    pixels_in = cfg.in_channels * cfg.input_size**2
    ops = [
        Op("x_embedder.proj", "patch_embed", T * D * cfg.in_channels * P2, D * cfg.in_channels * P2 + D, pixels_in, T * D),
        Op("pos_embed add", "elementwise", weights=T * D, reads=T * D, writes=T * D),
    ]
    if not cfg.one_step:
        ops += [
            Op("t_embedder.frequencies", "elementwise", reads=1, writes=F),
            Op("t_embedder.mlp.0", "timestep_embed", F * D, F * D + D, F, D),
            Op("t_embedder.mlp.1 (SiLU)", "elementwise", reads=D, writes=D),
            Op("t_embedder.mlp.2", "timestep_embed", D * D, D * D + D, D, D),
        ]
    if cfg.class_conditional:
        ops.append(Op("y_embedder (gather)", "elementwise", weights=D, reads=1, writes=D))
    mod = []
    if cfg.conditioned:
        mod = [
            Op("blocks.adaLN_modulation.0 (SiLU)", "elementwise", reads=D, writes=D, repeat=L),
            Op("blocks.adaLN_modulation.1", "adaln", 6 * D * D, 6 * D * D + 6 * D, D, 6 * D, repeat=L),
        ]
    ops += mod + [
        Op("blocks.norm1 + modulate", "elementwise", weights=0, reads=T * D, writes=T * D, repeat=L),
        Op("blocks.attn.qkv", "attention_linear", 3 * T * D * D, 3 * D * D + 3 * D, T * D, 3 * T * D, L, True),
        Op("blocks.attn.q_scale", "elementwise", reads=T * D, writes=T * D, repeat=L),
        Op("blocks.attn.q@kT", "attention_matmul", T * T * D, 0, 2 * T * D, H * T * T, L),
        Op("blocks.attn.softmax", "elementwise", reads=H * T * T, writes=H * T * T, repeat=L),
        Op("blocks.attn.attn@v", "attention_matmul", T * T * D, 0, H * T * T + T * D, T * D, L),
        Op("blocks.attn.proj", "attention_linear", T * D * D, D * D + D, T * D, T * D, L, True),
        Op("blocks.gate + residual (attn)", "elementwise", reads=2 * T * D, writes=T * D, repeat=L),
        Op("blocks.norm2 + modulate", "elementwise", reads=T * D, writes=T * D, repeat=L),
        Op("blocks.mlp.fc1", "mlp", T * D * R, D * R + R, T * D, T * R, L, True),
        Op("blocks.mlp.act (GELU)", "elementwise", reads=T * R, writes=T * R, repeat=L),
        Op("blocks.mlp.fc2", "mlp", T * R * D, R * D + D, T * R, T * D, L, True),
        Op("blocks.gate + residual (mlp)", "elementwise", reads=2 * T * D, writes=T * D, repeat=L),
    ]
    if cfg.conditioned:
        ops += [
            Op("final_layer.adaLN_modulation.0 (SiLU)", "elementwise", reads=D, writes=D),
            Op("final_layer.adaLN_modulation.1", "adaln", 2 * D * D, 2 * D * D + 2 * D, D, 2 * D),
        ]
    out = T * P2 * cfg.out_channels
    ops += [
        Op("final_layer.norm_final + modulate", "elementwise", reads=T * D, writes=T * D),
        Op("final_layer.linear", "final", T * D * P2 * cfg.out_channels, D * P2 * cfg.out_channels + P2 * cfg.out_channels, T * D, out),
        Op("unpatchify", "elementwise", reads=out, writes=out),
    ]
    return ops


def count_macs(cfg: DiTConfig) -> int:
    """Multiply-accumulates per image (matrix products only)."""
    return sum(op.macs * op.repeat for op in layer_ops(cfg))


def macs_breakdown(cfg: DiTConfig) -> dict[str, int]:
    groups: dict[str, int] = {}
    for op in layer_ops(cfg):
        if op.macs:
            groups[op.group] = groups.get(op.group, 0) + op.macs * op.repeat
    return groups


def activation_peak_bytes(cfg: DiTConfig, bytes_per_element: int) -> int:
    """Estimate at batch 1: the largest set of activations alive at once when operations run one
    by one, unfused (an operation's inputs and outputs plus the residual stream it branches from).
    Fused TensorRT kernels (e.g. MHA, which never writes the T x T scores) need less."""
    residual = cfg.num_patches * cfg.hidden_size
    return max(op.reads + op.writes + residual for op in layer_ops(cfg)) * bytes_per_element


def roofline_ms(cfg: DiTConfig, device: DeviceSpec, precision: str, batch: int = 1) -> float:
    """Estimated latency per call: sum over operations of max(compute time, memory time)."""
    if precision not in ("fp16", "int8"):
        raise ValueError(f"precision must be fp16 or int8, not {precision!r}")
    seconds = 0.0
    for op in layer_ops(cfg):
        int8 = precision == "int8" and op.quantized
        peak = device.int8_ops_per_s if int8 else device.fp16_flops_per_s
        in_bytes = 1 if int8 else 2  # INT8 layers read quantized weights and activations
        traffic = op.weights * in_bytes + batch * (op.reads * in_bytes + op.writes * 2)
        seconds += op.repeat * max(2 * op.macs * batch / peak, traffic / device.bandwidth_bytes_per_s)
    return seconds * 1e3


def describe(cfg: DiTConfig, name: str | None = None) -> dict:
    """Everything `edgedit models` reports for one configuration (JSON-ready)."""
    report = {
        "name": name or "custom",
        "kind": cfg.kind,
        "config": cfg.to_dict(),
        "params": count_params(cfg),
        "macs": count_macs(cfg),
        "macs_breakdown": macs_breakdown(cfg),
        "tokens": cfg.num_patches,
        "weights_bytes": weight_bytes(cfg),
        "activation_peak_bytes": {"fp32": activation_peak_bytes(cfg, 4), "fp16": activation_peak_bytes(cfg, 2)},
    }
    for key, device in DEVICES.items():
        for precision in ("fp16", "int8"):
            report[f"{key.replace('-', '_')}_{precision}_ms"] = roofline_ms(cfg, device, precision)
    report["latency_note"] = LATENCY_NOTE
    return report
