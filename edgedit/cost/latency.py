"""Estimated latency of a network on a Jetson Orin Nano under TensorRT: a calibrated kernel model. Torch-free.

The network is the list of kernels TensorRT runs for it (`edgedit.cost.kernels`). Each kernel costs

    t = max(FLOPs / (peak x efficiency x SM fill), bytes / (DRAM bandwidth x bandwidth efficiency)) + floor

- peak: the dense tensor-core rate of its math (INT8, FP16, or TF32 for an FP32 layer) at the mode's
  GPU clock; `efficiency`: what a GEMM (or a convolution, separately) that fills the GPU achieves;
  INT8 runs at `int8_efficiency` x its 2x-FP16 peak;
- SM fill: a GEMM of fewer 64 x 64 output tiles than the GPU's 8 SMs leaves SMs idle;
- bytes: weights and activations read and written, at the element size of the kernel's precision;
- floor: the fixed GPU cost of a kernel (launch latency, prologue, tail), in GPU clock cycles: it
  scales with the power mode's GPU clock.

Without a CUDA graph each launch also costs the CPU `launch_us` (scaled by the CPU clock) and the
GPU cannot start a kernel before it is enqueued, so a network of many tiny kernels can be
launch-bound; with `cuda_graph=True` the network is one launch. The result is the GPU time of one
call (what trtexec reports as "GPU Compute Time" and edgedit's TensorRT backend as `gpu_ms`),
inputs already on the device.

Precisions, as edgedit builds engines (`edgedit build-engine`), under a precision plan
(`edgedit.contract.quantization.PrecisionPlan`: which layer classes are INT8, which FP32 candidates
stay FP32; DiT estimates without a file assume the recipe's INT8 classes and no FP32 island):
  fp32       every layer FP32 (matrix products in TF32, which TensorRT allows on Ampere by default)
  fp16       an FP16-typed network (strongly typed); the plan's FP32 islands in FP32
  int8       a Q/DQ network typed FP16 (strongly typed): the plan's INT8 classes INT8 with their Q/DQ
             fused into the GEMM, FP16 elsewhere, the plan's FP32 islands in FP32
  int8-fp32  the same Q/DQ network typed FP32 (what `edgedit quantize --high-precision fp32` writes)
  best       a Q/DQ network built weakly typed with FP16 + INT8 flags: INT8 where the Q/DQ say, FP16
             everywhere else (TensorRT chooses; no FP32 island)
Typed graphs pay for what the types force: every Cast between an FP32 island and FP16 is a reformat
kernel (TensorRT may fuse some: counting them all keeps the estimate on the safe side), and an INT8
layer whose input cannot be quantized in its producer's epilogue (after fused attention; on a network
input) gets a quantize kernel of its own. FP32 softmax or INT8 attention products break TensorRT's
fused-attention pattern: the attention then runs unfused.
Networks costed without a plan (the public points of the fit) run every layer in the precision's
type; `int8_layers="all"` is an implicitly quantized network (trtexec --int8 on an FP32 ONNX: every
GEMM and convolution INT8, chained in INT8, the rest FP32, or FP16 under `best`).
The constants come from a fit to public measurements (`edgedit.cost.fit`); every number
this module returns is an estimate, and is labelled so wherever it is shown.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from edgedit.contract.errors import EdgeditError
from edgedit.contract.hardware import DeviceSpec
from edgedit.contract.quantization import RECIPE_INT8, PrecisionPlan
from edgedit.cost.kernels import Kernel, memory

PRECISIONS = ("fp32", "fp16", "int8", "int8-fp32", "best")
ESTIMATE_PLAN = PrecisionPlan(int8=RECIPE_INT8, high="fp16", fp32=())  # DiT estimates without a quantized file
TILE = 64  # output tile edge of a GEMM kernel, for SM fill
REFERENCE_GPU_MHZ = 625.0  # floors are stated at the original Orin Nano's GPU clock
REFERENCE_CPU_GHZ = 1.5  # launch costs at the original Orin Nano's CPU clock


@dataclass(frozen=True)
class Constants:
    tensor_efficiency: float  # achieved / dense peak, FP16 and TF32 GEMMs that fill the GPU
    conv_efficiency: float  # the same for convolutions (implicit GEMMs)
    int8_efficiency: float  # INT8 relative to its peak of twice FP16 (1.0: INT8 twice as fast as FP16)
    bandwidth_efficiency: float  # achieved / DRAM peak
    kernel_floor_us: float  # per kernel, at REFERENCE_GPU_MHZ
    launch_us: float  # CPU enqueue cost per kernel without a CUDA graph, at REFERENCE_CPU_GHZ

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Precision:
    """How one kernel runs: its math and the bytes per weight, input and output element."""

    math: str  # "int8", "fp16" or "tf32" (matrix products)
    weight_bytes: int
    read_bytes: int
    write_bytes: int


FP32, FP16 = Precision("tf32", 4, 4, 4), Precision("fp16", 2, 2, 2)


def int8_plan(plan: PrecisionPlan | None) -> PrecisionPlan:
    """What INT8 would run for a file of this plan: its own INT8 classes, or for an FP32/FP16 file (no
    INT8 class yet) the recipe's, with the file's FP32 islands."""
    plan = plan or ESTIMATE_PLAN
    return plan if plan.int8 else PrecisionPlan(int8=ESTIMATE_PLAN.int8, high=plan.high, fp32=plan.fp32, io=plan.io)


def effective_plan(precision: str, plan: PrecisionPlan | None) -> PrecisionPlan | None:
    """The plan `precision` runs a planned network under (None: an unplanned network, every layer in
    the precision's type)."""
    if precision not in PRECISIONS:
        raise EdgeditError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if plan is None or precision == "fp32":
        return None
    if precision == "fp16":
        return PrecisionPlan(int8=(), high="fp16", fp32=plan.kept_fp32, io=plan.io)
    if precision == "int8-fp32":
        return PrecisionPlan(int8=plan.int8, high="fp32", fp32=(), io=plan.io)
    if precision == "best":
        return PrecisionPlan(int8=plan.int8, high="fp16", fp32=(), io=plan.io)
    return PrecisionPlan(int8=plan.int8, high="fp16", fp32=plan.kept_fp32, io=plan.io)


def unfuses_attention(precision: str, plan: PrecisionPlan | None) -> bool:
    """FP32 softmax inside an FP16 graph, or INT8 attention products, break the fused-attention pattern."""
    p = effective_plan(precision, plan)
    return p is not None and ("attention" in p.int8 or (p.high == "fp16" and "softmax" in p.kept_fp32))


def kernel_precision(
    kernel: Kernel, precision: str, int8_layers: str = "recipe", plan: PrecisionPlan | None = None
) -> Precision:
    """How `kernel` runs. With a plan (a DiT): its INT8 classes INT8, its FP32 islands FP32, the rest the
    plan's high precision. Without one: every layer in the precision's type; `int8_layers="all"`:
    every GEMM and convolution INT8 (an implicitly quantized network), chained in INT8."""
    p = effective_plan(precision, plan)
    if p is None:
        if precision in ("fp16", "fp32"):
            return FP16 if precision == "fp16" else FP32
        if kernel.kind in ("gemm", "conv"):  # int8_layers "all": implicit INT8
            return Precision("int8", 1, 1, 1)
        return FP32 if precision == "int8" else FP16
    high = FP16 if p.high == "fp16" else FP32
    if kernel.kind in ("gemm", "conv") and kernel.layer in p.int8:
        return Precision("int8", 1, 1, high.write_bytes)  # Q/DQ fused: INT8 in, dequantized out
    if p.high == "fp16" and set(kernel.islands) & set(p.kept_fp32):
        return FP32
    return high


def extra_kernels(
    kernel: Kernel, types: Precision, precision: str, plan: PrecisionPlan | None
) -> list[tuple[Kernel, Precision]]:
    """What a typed graph adds around `kernel`: a quantize kernel where its producer cannot quantize,
    and a reformat for each Cast in and out of an FP32 island inside an FP16 graph."""
    p = effective_plan(precision, plan)
    if p is None:
        return []
    high = 2 if p.high == "fp16" else 4
    if types.math == "int8" and not kernel.fused_quantize:
        elements = kernel.m * kernel.k * kernel.groups
        return [
            (
                memory(f"{kernel.name} input quantize", elements, elements, count=kernel.count),
                Precision("fp16", 0, high, 1),
            )
        ]
    if types is FP32 and p.high == "fp16":
        return [
            (
                memory(f"{kernel.name} cast in", kernel.reads, kernel.reads, count=kernel.count),
                Precision("fp16", 0, 2, 4),
            ),
            (
                memory(f"{kernel.name} cast out", kernel.writes, kernel.writes, count=kernel.count),
                Precision("fp16", 0, 4, 2),
            ),
        ]
    return []


class Workload:
    """A network on a device at a precision, as arrays: what the constants multiply. Built once, then
    timed under any constants (the fit evaluates thousands of them)."""

    def __init__(
        self,
        kernels: list[Kernel],
        device: DeviceSpec,
        precision: str,
        int8_layers: str = "recipe",
        plan: PrecisionPlan | None = None,
    ):
        self.device = device
        if plan is None and precision not in ("fp32", "fp16") and int8_layers != "all":
            plan = ESTIMATE_PLAN  # Q/DQ layers: the recipe's
        typed = []
        for k in kernels:
            p = kernel_precision(k, precision, int8_layers, plan)
            typed += [*extra_kernels(k, p, precision, plan), (k, p)]
        self.kernels = typed  # what runs, with its types (`edgedit models` can list them)
        rows = []
        for k, p in typed:
            columns = 1 if k.kind == "attention" else math.ceil(k.n / TILE) if k.n else 1
            fill = min(1.0, math.ceil(k.m / TILE) * columns * k.groups / device.sms) if k.m else 1.0
            peak = {"int8": device.int8_ops_per_s, "fp16": device.fp16_flops_per_s, "tf32": device.tf32_flops_per_s}[
                p.math
            ]
            traffic = k.weights * p.weight_bytes + k.reads * p.read_bytes + k.writes * p.write_bytes
            rows.append(
                (
                    0.0 if k.kind == "memory" else k.flops / (peak * fill),
                    traffic,
                    k.kind == "conv",
                    p.math == "int8",
                    k.count,
                )
            )
        ideal, traffic, conv, int8, count = zip(*rows) if rows else ((), (), (), (), ())
        self.ideal_s = np.asarray(ideal, float)  # seconds at 100% efficiency, with SM fill
        self.traffic = np.asarray(traffic, float)  # bytes
        self.conv = np.asarray(conv, bool)
        self.int8 = np.asarray(int8, bool)
        self.count = np.asarray(count, int)

    def kernel_us(self, c: Constants) -> np.ndarray:
        """GPU microseconds of one launch of each kernel."""
        efficiency = np.where(self.conv, c.conv_efficiency, c.tensor_efficiency) * np.where(
            self.int8, c.int8_efficiency, 1.0
        )
        compute = self.ideal_s / efficiency
        memory = self.traffic / (self.device.bandwidth_bytes_per_s * c.bandwidth_efficiency)
        return np.maximum(compute, memory) * 1e6 + c.kernel_floor_us * REFERENCE_GPU_MHZ / self.device.gpu_mhz

    def ms(self, c: Constants, cuda_graph: bool = False) -> float:
        """One call. Without a graph, launch i (1-based, L each) is enqueued at i L and the GPU runs the
        kernels in order as soon as each is enqueued: the end is max over i of (i L + the time of
        kernels i..N). With a graph: one launch, then every kernel back to back."""
        times = np.repeat(self.kernel_us(c), self.count)
        launch = c.launch_us * REFERENCE_CPU_GHZ / self.device.cpu_ghz
        if cuda_graph or times.size == 0:
            return float(launch + times.sum()) / 1e3
        suffix = np.cumsum(times[::-1])[::-1]  # time of kernels i..N
        return float(np.max(launch * np.arange(1, times.size + 1) + suffix)) / 1e3


def network_ms(
    kernels: list[Kernel],
    device: DeviceSpec,
    precision: str,
    c: Constants,
    cuda_graph: bool = False,
    int8_layers: str = "recipe",
    plan: PrecisionPlan | None = None,
) -> float:
    """GPU time of one call, in milliseconds."""
    return Workload(kernels, device, precision, int8_layers, plan).ms(c, cuda_graph)
