"""A network as the kernels TensorRT runs for it, after its usual fusions. Torch-free.

A `Kernel` is one GPU launch: a matrix product (a Linear, a convolution as an implicit GEMM, a
batched attention product), a fused attention, or a memory-bound kernel (normalization,
activation, softmax, pooling, copies), with its shape and the elements it reads and writes.

Fusions assumed (TensorRT 10 builds transformer graphs with its Myelin backend and convolutional
ones with its layer fusions; "TensorRT Developer Guide: Optimizing Performance / Layer Fusion" and
"Working with Transformers / Fused Attention", https://docs.nvidia.com/deeplearning/tensorrt/):
- GEMM + bias + activation (GELU, SiLU, ReLU) and a following residual add (times an adaLN gate)
  run as one kernel: the epilogue of the GEMM. Convolution + batch norm + activation (+ residual)
  likewise.
- LayerNormalization and the adaLN modulate x * (1 + scale) + shift: one normalization kernel.
- adaLN modulation SiLU(c) -> Linear(D, 6D): one kernel per block (a GEMV; SiLU in its prologue).
- Attention softmax((q s) k^T) v: one fused kernel when the head size is a multiple of 8 and at
  most 256 (the shapes TensorRT's fused MHA kernels serve); otherwise three: Q K^T (a batched
  GEMM over heads), softmax, and attn V. The q scale folds into the QKV GEMM.
- Concatenations are eliminated (producers write into the concatenated buffer); reshapes,
  slices and chunk()s are free; a transpose that changes memory order (unpatchify) is a copy.
Unfused elementwise leftovers (EDM preconditioning, embeddings) are one memory kernel each.

Kernels also say which layer class they belong to (`edgedit.contract.quantization`): the INT8 class
of a GEMM or convolution (`layer`), the FP32 candidate classes of any kernel (`islands`), and
whether TensorRT can quantize a GEMM's input in its producer's epilogue (`fused_quantize`: after a
normalization or another GEMM it can; after fused attention, or on a network input, a standalone
quantize kernel runs). The latency model turns a precision plan into each kernel's types from these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgedit.contract.config import FREQUENCY_EMBEDDING_SIZE, DiTConfig


@dataclass(frozen=True)
class Kernel:
    """One launch for a whole batch. GEMMs compute (m x k) @ (k x n), `groups` times."""

    name: str
    kind: str  # "gemm", "conv" (an implicit GEMM), "attention" or "memory"
    m: int = 0
    n: int = 0
    k: int = 0
    groups: int = 1
    weights: int = 0  # parameter elements read
    reads: int = 0  # activation elements read
    writes: int = 0  # activation elements written
    count: int = 1  # identical launches (per block)
    group: str = ""  # what its MACs are reported under (`edgedit models`)
    layer: str = ""  # its INT8 layer class (a GEMM or convolution of a DiT), or ""
    islands: tuple[str, ...] = ()  # the FP32 candidate classes it belongs to
    fused_quantize: bool = True  # an INT8 input is quantized by its producer (else a kernel of its own)

    @property
    def flops(self) -> int:
        products = 2 if self.kind == "attention" else 1  # fused attention: q k^T and attn v
        return 2 * products * self.m * self.n * self.k * self.groups


def gemm(
    name: str,
    m: int,
    n: int,
    k: int,
    *,
    bias: bool = True,
    extra_reads: int = 0,
    groups: int = 1,
    count: int = 1,
    weights: bool = True,
    group: str = "",
    layer: str = "",
    islands: tuple[str, ...] = (),
    fused_quantize: bool = True,
) -> Kernel:
    """x (m, k) @ W (k, n) [+ b], fused epilogue reading `extra_reads` more elements (residual, gate);
    `weights=False`: both operands are activations (an attention product)."""
    w = (k * n + (n if bias else 0)) * groups if weights else 0
    reads = m * k * groups + (0 if weights else k * n * groups) + extra_reads
    return Kernel(name, "gemm", m, n, k, groups, w, reads, m * n * groups, count, group, layer, islands, fused_quantize)


def memory(
    name: str, reads: int, writes: int, weights: int = 0, count: int = 1, islands: tuple[str, ...] = ()
) -> Kernel:
    return Kernel(name, "memory", weights=weights, reads=reads, writes=writes, count=count, islands=islands)


def attention(
    name: str, batch: int, tokens: int, heads: int, head_dim: int, count: int = 1, fused: bool = True, layer: str = ""
) -> list[Kernel]:
    """softmax(q k^T) v over `heads` heads of `tokens` tokens, fused when TensorRT can (see above) and
    `fused` (a precision plan that splits the pattern, FP32 softmax or INT8 products, unfuses it)."""
    g, t, d = batch * heads, tokens, head_dim
    if fused and head_dim % 8 == 0 and head_dim <= 256:
        return [
            Kernel(
                f"{name} (fused MHA)",
                "attention",
                t,
                t,
                d,
                g,
                reads=3 * g * t * d,
                writes=g * t * d,
                count=count,
                group="attention_matmul",
                islands=("softmax",),
            )
        ]
    products = dict(groups=g, bias=False, weights=False, count=count, group="attention_matmul", layer=layer)
    return [
        gemm(f"{name}.q@kT", t, t, d, fused_quantize=True, **products),
        memory(f"{name}.softmax", g * t * t, g * t * t, count=count, islands=("softmax",)),
        gemm(f"{name}.attn@v", t, d, t, fused_quantize=True, **products),
    ]


def total_kernels(kernels: list[Kernel]) -> int:
    return sum(k.count for k in kernels)


#################################################################################
#                                Transformers                                   #
#################################################################################


@dataclass(frozen=True)
class TransformerShape:
    """A pre-norm transformer encoder: enough to cost a DiT, a ViT or a CLIP/Qwen vision tower."""

    depth: int
    width: int
    heads: int
    mlp_hidden: int
    tokens: int
    adaln: bool = False  # adaLN modulation from a conditioning vector (DiT); else plain LayerNorm
    rope: bool = False  # rotary position embedding applied to q and k (one memory kernel per block)

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


def encoder_blocks(s: TransformerShape, batch: int, unfused_attention: bool = False) -> list[Kernel]:
    """The kernels of `s.depth` identical blocks (counted, not repeated)."""
    T, D, R, L, B = s.tokens, s.width, s.mlp_hidden, s.depth, batch
    M = B * T  # GEMM rows: every token of every image
    kernels = []
    if s.adaln:
        kernels.append(
            gemm("blocks.adaLN_modulation", B, 6 * D, D, count=L, group="adaln", layer="adaln", fused_quantize=False)
        )
    gate = B * D if s.adaln else 0  # the adaLN gate read by the residual epilogue
    kernels += [
        memory(
            "blocks.norm1" + (" + modulate" if s.adaln else ""), M * D, M * D, 2 * D, count=L, islands=("layernorm",)
        ),
        gemm("blocks.attn.qkv", M, 3 * D, D, count=L, group="attention_linear", layer="qkv"),
    ]
    if s.rope:
        kernels.append(memory("blocks.attn.rope(q, k)", 2 * M * D, 2 * M * D, count=L))
    kernels += attention(
        "blocks.attn", B, T, s.heads, s.head_dim, count=L, fused=not unfused_attention, layer="attention"
    )
    kernels += [
        gemm(
            "blocks.attn.proj + residual",
            M,
            D,
            D,
            extra_reads=M * D + gate,
            count=L,
            group="attention_linear",
            layer="proj",
            fused_quantize=False,
        ),  # its input comes out of the attention kernel
        memory(
            "blocks.norm2" + (" + modulate" if s.adaln else ""), M * D, M * D, 2 * D, count=L, islands=("layernorm",)
        ),
        gemm("blocks.mlp.fc1 + GELU", M, R, D, count=L, group="mlp", layer="fc1"),
        gemm("blocks.mlp.fc2 + residual", M, D, R, extra_reads=M * D + gate, count=L, group="mlp", layer="fc2"),
    ]
    return kernels


def dit_shape(cfg: DiTConfig) -> TransformerShape:
    return TransformerShape(
        cfg.depth, cfg.hidden_size, cfg.num_heads, cfg.mlp_hidden, cfg.num_patches, adaln=cfg.conditioned
    )


def dit_kernels(cfg: DiTConfig, batch: int = 1, unfused_attention: bool = False) -> list[Kernel]:
    """One network evaluation of an exported DiT (edgedit's graph: EDM preconditioning in-graph)."""
    B, T, D = batch, cfg.num_patches, cfg.hidden_size
    C, p, H = cfg.in_channels, cfg.patch_size, cfg.input_size
    pixels = B * C * H * H
    out = B * cfg.out_channels * H * H
    kernels = []
    if cfg.diffusion == "edm":
        kernels.append(memory("edm c_in * x, c_noise", pixels + B, pixels + B, islands=("outside",)))
    kernels.append(
        gemm(
            "x_embedder.proj + pos_embed",
            B * T,
            D,
            C * p * p,
            extra_reads=T * D,
            group="patch_embed",
            layer="embed",
            fused_quantize=False,
        )
    )
    if not cfg.one_step:
        kernels += [
            memory("t_embedder.frequencies", B, B * FREQUENCY_EMBEDDING_SIZE, islands=("timestep",)),
            gemm(
                "t_embedder.mlp.0 + SiLU",
                B,
                D,
                FREQUENCY_EMBEDDING_SIZE,
                group="timestep_embed",
                layer="embed",
                islands=("timestep",),
                fused_quantize=False,
            ),
            gemm("t_embedder.mlp.2", B, D, D, group="timestep_embed", layer="embed", islands=("timestep",)),
        ]
    if cfg.class_conditional:
        kernels.append(memory("y_embedder (gather) + c", B, B * D, B * D))
    kernels += encoder_blocks(dit_shape(cfg), batch, unfused_attention)
    if cfg.conditioned:
        kernels.append(
            gemm(
                "final_layer.adaLN_modulation",
                B,
                2 * D,
                D,
                group="adaln",
                layer="adaln",
                islands=("final",),
                fused_quantize=False,
            )
        )
    kernels += [
        memory(
            "final_layer.norm_final" + (" + modulate" if cfg.conditioned else ""),
            B * T * D,
            B * T * D,
            2 * D,
            islands=("layernorm", "final"),
        ),
        gemm(
            "final_layer.linear", B * T, p * p * cfg.out_channels, D, group="final", layer="final", islands=("final",)
        ),
        memory("unpatchify", out, out, islands=("outside",)),
    ]
    if cfg.diffusion == "edm":
        kernels.append(memory("edm c_skip * x + c_out * F", 2 * pixels + B, pixels, islands=("outside",)))
    return kernels


def vit_kernels(
    shape: TransformerShape,
    patch: int,
    patches: int,
    in_channels: int = 3,
    cls_token: bool = True,
    head_outputs: int = 0,
    batch: int = 1,
    temporal_patch: int = 1,
) -> list[Kernel]:
    """A ViT classifier / vision tower: patch embedding of `patches` patches, blocks, final norm and an
    optional head on the class token (DeiT, ViT-B, CLIP image towers, Qwen-VL vision towers)."""
    B, D, T = batch, shape.width, shape.tokens
    kernels = [
        gemm("patch_embed", B * patches, D, in_channels * patch * patch * temporal_patch),
        memory("cls token + pos_embed", B * T * D + T * D, B * T * D),
    ]
    kernels += encoder_blocks(shape, batch)
    kernels.append(memory("norm", B * T * D, B * T * D, 2 * D))
    if head_outputs:
        kernels.append(gemm("head (class token)", B if cls_token else B * T, head_outputs, D))
    return kernels


#################################################################################
#                             Convolutional networks                            #
#################################################################################


def conv(
    name: str, batch: int, h: int, w: int, c_in: int, c_out: int, kernel: int, stride: int = 1, residual: bool = False
) -> tuple[Kernel, int, int]:
    """Conv + BN + activation (+ residual add) as one implicit-GEMM kernel; returns it and the output size."""
    pad = kernel // 2
    ho, wo = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    m, k = batch * ho * wo, c_in * kernel * kernel
    return (
        Kernel(
            name,
            "conv",
            m,
            c_out,
            k,
            1,
            weights=k * c_out + c_out,
            reads=batch * h * w * c_in + (m * c_out if residual else 0),
            writes=m * c_out,
        ),
        ho,
        wo,
    )


def resnet_kernels(depth: int, image: int = 224, classes: int = 1000, batch: int = 1) -> list[Kernel]:
    """torchvision's ResNet-18/34/50/101 (He et al. 2016) at `image` x `image`."""
    blocks, bottleneck = {
        18: ([2, 2, 2, 2], False),
        34: ([3, 4, 6, 3], False),
        50: ([3, 4, 6, 3], True),
        101: ([3, 4, 23, 3], True),
    }[depth]
    B = batch
    stem, h, w = conv("conv1 7x7/2", B, image, image, 3, 64, 7, 2)
    kernels = [stem]
    h, w = (h + 1) // 2, (w + 1) // 2
    kernels.append(memory("maxpool 3x3/2", B * 64 * h * w * 4, B * 64 * h * w))
    c_in = 64
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
        c_out = width * (4 if bottleneck else 1)
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            name = f"layer{stage + 1}.{i}"
            if i == 0 and (stride != 1 or c_in != c_out):
                down, _, _ = conv(f"{name}.downsample", B, h, w, c_in, c_out, 1, stride)
                kernels.append(down)
            if bottleneck:
                a, h1, w1 = conv(f"{name}.conv1", B, h, w, c_in, width, 1)
                b, h2, w2 = conv(f"{name}.conv2", B, h1, w1, width, width, 3, stride)
                c, h, w = conv(f"{name}.conv3 + residual", B, h2, w2, width, c_out, 1, residual=True)
                kernels += [a, b, c]
            else:
                a, h1, w1 = conv(f"{name}.conv1", B, h, w, c_in, c_out, 3, stride)
                b, h, w = conv(f"{name}.conv2 + residual", B, h1, w1, c_out, c_out, 3, residual=True)
                kernels += [a, b]
            c_in = c_out
    kernels += [memory("avgpool", B * c_in * h * w, B * c_in), gemm("fc", B, classes, c_in)]
    return kernels


def _yolo_channels(c: int, width: float, max_channels: int) -> int:
    """Ultralytics' parse_model: make_divisible(min(c, max_channels) * width, 8)."""
    return int(math.ceil(min(c, max_channels) * width / 8) * 8)


YOLOV8_SCALES = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.25, 512),
}


def yolov8_kernels(scale: str = "n", image: int = 640, classes: int = 80, batch: int = 1) -> list[Kernel]:
    """Ultralytics YOLOv8 detection (ultralytics/cfg/models/v8/yolov8.yaml, nn/modules/block.py C2f,
    SPPF and head.py Detect with DFL), as exported to ONNX without NMS."""
    depth_multiple, width, max_ch = YOLOV8_SCALES[scale]
    B = batch
    ch = lambda c: _yolo_channels(c, width, max_ch)  # noqa: E731
    reps = lambda n: max(round(n * depth_multiple), 1)  # noqa: E731
    kernels: list[Kernel] = []

    def conv_(name, h, w, c_in, c_out, k, s=1, residual=False):
        kernel, ho, wo = conv(name, B, h, w, c_in, c_out, k, s, residual)
        kernels.append(kernel)
        return ho, wo

    def c2f(name, h, w, c_in, c_out, n, shortcut):
        c = c_out // 2  # e = 0.5
        conv_(f"{name}.cv1", h, w, c_in, 2 * c, 1)
        for i in range(n):
            conv_(f"{name}.m.{i}.cv1", h, w, c, c, 3)
            conv_(f"{name}.m.{i}.cv2", h, w, c, c, 3, residual=shortcut)
        conv_(f"{name}.cv2", h, w, (2 + n) * c, c_out, 1)

    h = w = image
    h, w = conv_("0", h, w, 3, ch(64), 3, 2)
    h, w = conv_("1", h, w, ch(64), ch(128), 3, 2)
    c2f("2", h, w, ch(128), ch(128), reps(3), True)
    h, w = conv_("3", h, w, ch(128), ch(256), 3, 2)
    c2f("4", h, w, ch(256), ch(256), reps(6), True)
    p3 = (h, w, ch(256))
    h, w = conv_("5", h, w, ch(256), ch(512), 3, 2)
    c2f("6", h, w, ch(512), ch(512), reps(6), True)
    p4 = (h, w, ch(512))
    h, w = conv_("7", h, w, ch(512), ch(1024), 3, 2)
    c2f("8", h, w, ch(1024), ch(1024), reps(3), True)
    c5 = ch(1024)
    conv_("9.cv1 (SPPF)", h, w, c5, c5 // 2, 1)
    kernels.append(memory("9.maxpool 5x5", B * h * w * c5 // 2, B * h * w * c5 // 2, count=3))
    conv_("9.cv2", h, w, 2 * c5, c5, 1)
    p5 = (h, w, c5)
    # head: FPN up, PAN down
    kernels.append(memory("10.upsample", B * h * w * c5, 4 * B * h * w * c5))
    c2f("12", p4[0], p4[1], c5 + p4[2], ch(512), reps(3), False)
    h12 = (p4[0], p4[1], ch(512))
    kernels.append(memory("13.upsample", B * p4[0] * p4[1] * ch(512), 4 * B * p4[0] * p4[1] * ch(512)))
    c2f("15", p3[0], p3[1], ch(512) + p3[2], ch(256), reps(3), False)
    out3 = (p3[0], p3[1], ch(256))
    h, w = conv_("16", p3[0], p3[1], ch(256), ch(256), 3, 2)
    c2f("18", h, w, ch(256) + h12[2], ch(512), reps(3), False)
    out4 = (h, w, ch(512))
    h, w = conv_("19", h, w, ch(512), ch(512), 3, 2)
    c2f("21", h, w, ch(512) + p5[2], ch(1024), reps(3), False)
    out5 = (h, w, ch(1024))
    # Detect: per level a box branch (3x3, 3x3, 1x1 to 4 x 16 DFL bins) and a class branch
    reg_max = 16
    c2, c3 = max(16, out3[2] // 4, reg_max * 4), max(out3[2], min(classes, 100))
    anchors = 0
    for level, (h, w, c) in enumerate((out3, out4, out5)):
        conv_(f"22.cv2.{level}.0", h, w, c, c2, 3)
        conv_(f"22.cv2.{level}.1", h, w, c2, c2, 3)
        conv_(f"22.cv2.{level}.2", h, w, c2, 4 * reg_max, 1)
        conv_(f"22.cv3.{level}.0", h, w, c, c3, 3)
        conv_(f"22.cv3.{level}.1", h, w, c3, c3, 3)
        conv_(f"22.cv3.{level}.2", h, w, c3, classes, 1)
        anchors += h * w
    boxes = B * anchors * 4 * reg_max
    kernels += [
        memory("22.dfl softmax", boxes, boxes),
        gemm("22.dfl conv", B * anchors * 4, 1, reg_max, bias=False),
        memory("22.decode boxes + sigmoid(classes)", B * anchors * (4 + classes), B * anchors * (4 + classes)),
    ]
    return kernels
