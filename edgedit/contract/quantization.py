"""Which layers run in INT8 and which stay in FP32: the layer classes of a DiT and the precision plan
that `edgedit quantize` chooses, the weight accounting counts and the device latency model costs.
Torch-free, onnx-free.

Layer classes are named after the modules an exported graph's nodes are named after
(`blocks.3.attn.qkv/MatMul`). INT8 candidates: the block Linear layers (qkv, the attention output
projection, the two MLP layers), the adaLN modulation, the final layer, the patch/timestep
embedders and the attention products (activation x activation). The recipe without measurements
quantizes the block Linear layers and keeps the sensitive parts of a DiT in high precision (PTQ4DiT,
Wu et al., NeurIPS 2024; TensorRT's demoDiffusion keeps embedders and output layers in FP16 too);
`edgedit quantize --plan auto` measures each class and chooses.

In an FP16-typed graph, some ops may have to stay FP32 (overflow, or accuracy lost): the FP32
candidates below, decided from measurements the way ModelOpt's AutoCast decides (magnitudes
against FP16's range, and the output error).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

# INT8 layer classes: name -> module patterns of the nodes (fnmatch, before the '/').
INT8_CLASSES: dict[str, tuple[str, ...]] = {
    "qkv": ("blocks.*.attn.qkv",),
    "proj": ("blocks.*.attn.proj",),
    "fc1": ("blocks.*.mlp.fc1",),
    "fc2": ("blocks.*.mlp.fc2",),
    "adaln": ("blocks.*.adaLN_modulation.*", "final_layer.adaLN_modulation.*"),
    "final": ("final_layer.linear",),
    "embed": ("x_embedder.proj", "t_embedder.mlp.*"),
    "attention": ("blocks.*.attn",),  # Q K^T and softmax V: both operands are activations
}
RECIPE_INT8 = ("qkv", "proj", "fc1", "fc2")  # without measurements (and the latency model's default)
# The quality budget an INT8 model must meet by default: output PSNR (dB) against FP32 on held-out inputs.
MIN_PSNR_DB = 30.0

# FP32 candidates in an FP16-typed graph: name -> (op types, module patterns); a node is in the class
# when its op type is listed (any module) or its module matches.
FP32_CLASSES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "layernorm": (("LayerNormalization",), ()),
    "softmax": (("Softmax",), ()),
    "timestep": ((), ("t_embedder", "t_embedder.*")),  # the sinusoids and their MLP
    "final": ((), ("final_layer", "final_layer.*")),
    "outside": ((), ("",)),  # nodes of no DiT module: EDM preconditioning, I/O casts, unpatchify
}
RECIPE_FP32 = ("layernorm", "softmax", "outside")  # what `edgedit export --precision fp16` keeps in FP32

HIGH_PRECISIONS = ("fp16", "fp32")  # the type of everything that is not INT8


def module_of(node_name: str) -> str:
    """'blocks.3.attn.qkv/MatMul' -> 'blocks.3.attn.qkv'; '/Add' (no module) -> ''."""
    return node_name.rsplit("/", 1)[0] if "/" in node_name else ""


def int8_class(node_name: str) -> str | None:
    """The INT8 layer class a MatMul/Gemm/Conv node belongs to, or None."""
    module = module_of(node_name)
    return next(
        (c for c, patterns in INT8_CLASSES.items() if any(fnmatch.fnmatchcase(module, p) for p in patterns)), None
    )


def fp32_class(node_name: str, op_type: str) -> str | None:
    """The FP32 candidate class of a node, or None (op types first: a LayerNorm is 'layernorm' anywhere)."""
    for name, (ops, _) in FP32_CLASSES.items():
        if op_type in ops:
            return name
    module = module_of(node_name)
    return next(
        (name for name, (_, patterns) in FP32_CLASSES.items() if any(fnmatch.fnmatchcase(module, p) for p in patterns)),
        None,
    )


def is_int8_weight(name: str, classes: tuple[str, ...] = RECIPE_INT8) -> bool:
    """A state_dict weight, e.g. 'blocks.3.attn.qkv.weight', of a layer the plan quantizes."""
    return name.endswith(".weight") and int8_class(name.removesuffix(".weight") + "/W") in classes


@dataclass(frozen=True)
class PrecisionPlan:
    """What runs in which type: INT8 layer classes, the type of the rest, and the FP32 candidates
    kept in FP32 when the rest is FP16. Recorded in a quantized ONNX's metadata."""

    int8: tuple[str, ...] = RECIPE_INT8
    high: str = "fp16"
    fp32: tuple[str, ...] = RECIPE_FP32
    io: str = "fp32"  # the graph's input/output type

    def __post_init__(self):
        unknown = [c for c in self.int8 if c not in INT8_CLASSES] + [c for c in self.fp32 if c not in FP32_CLASSES]
        if unknown:
            raise ValueError(
                f"unknown layer classes {unknown}; INT8: {', '.join(INT8_CLASSES)}; FP32: {', '.join(FP32_CLASSES)}"
            )
        if self.high not in HIGH_PRECISIONS or self.io not in HIGH_PRECISIONS:
            raise ValueError(f"high precision and I/O must be one of {', '.join(HIGH_PRECISIONS)}")

    @property
    def kept_fp32(self) -> tuple[str, ...]:
        """FP32 classes that matter: all of them in an FP32-typed graph are FP32 anyway."""
        return self.fp32 if self.high == "fp16" else ()

    def to_dict(self) -> dict[str, Any]:
        return {"int8": list(self.int8), "high": self.high, "fp32": list(self.kept_fp32), "io": self.io}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrecisionPlan:
        return cls(tuple(data["int8"]), data["high"], tuple(data["fp32"]), data.get("io", "fp32"))


@dataclass(frozen=True)
class LayerChoice:
    """One row of a plan's table: a class, its MACs per image, the error when it alone is changed, and
    the decision (with why)."""

    name: str
    macs: int
    psnr_db: float | None  # output PSNR against FP32 with this class alone changed (None: not present)
    decision: str  # "int8" / "high" for INT8 classes, "fp16" / "fp32" for FP32 candidates
    why: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
