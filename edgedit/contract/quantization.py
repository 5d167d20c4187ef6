"""Which layers edgedit's INT8 recipe quantizes: one allow-list for `edgedit quantize`, the weight
accounting and the device latency model.

The block Linear layers: q|k|v, the attention output projection and the two MLP layers. The
sensitive parts of a DiT stay in high precision: patch / timestep / label embedders, the adaLN
modulation (scale, shift and gate of every block), the final layer, the attention products
(activation x activation) and softmax, and the EDM preconditioning around the network (PTQ4DiT,
Wu et al., NeurIPS 2024; TensorRT's demoDiffusion keeps embedders and output layers in FP16 too).
"""

from __future__ import annotations

import fnmatch

INT8_LAYERS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


def is_int8_weight(name: str) -> bool:
    """A state_dict name, e.g. 'blocks.3.attn.qkv.weight'."""
    return name.endswith(".weight") and any(fnmatch.fnmatchcase(name,
                                                                f"blocks.*.{layer}.weight") for layer in INT8_LAYERS)


def is_int8_node(name: str) -> bool:
    """An exported ONNX node named after its module, e.g. 'blocks.3.attn.qkv/MatMul'."""
    return any(fnmatch.fnmatchcase(name, f"blocks.*.{layer}/*") for layer in INT8_LAYERS)
