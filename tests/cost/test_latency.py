"""The kernel cost model reduces to its terms: compute, memory, floor, launch, graph."""

import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.contract.hardware import DEVICES, POWER_MODES
from edgedit.contract.quantization import PrecisionPlan
from edgedit.cost.kernels import Kernel, gemm, memory
from edgedit.cost.latency import (
    REFERENCE_CPU_GHZ,
    REFERENCE_GPU_MHZ,
    Constants,
    Precision,
    Workload,
    kernel_precision,
    network_ms,
    unfuses_attention,
)

C = Constants(
    tensor_efficiency=0.5,
    conv_efficiency=0.25,
    int8_efficiency=0.8,
    bandwidth_efficiency=0.5,
    kernel_floor_us=10.0,
    launch_us=6.0,
)
NANO, SUPER = DEVICES["orin-nano"], DEVICES["orin-nano-super"]


def test_peaks_follow_the_tensor_cores_and_clock():
    # 8 SMs x 4 tensor cores x 1024 INT8 ops per clock: 20.5 TOPS at 625 MHz, half of NVIDIA's 40 sparse TOPS
    # float64 products of exact integers and a clock (~1e-16); 33.42e12 is 33.4234e12 to 4 digits (1e-4)
    assert NANO.int8_ops_per_s == pytest.approx(20.48e12, rel=1e-12)
    assert SUPER.int8_ops_per_s == pytest.approx(33.42e12, rel=1e-3)
    assert NANO.fp16_flops_per_s == NANO.int8_ops_per_s / 2 == 2 * NANO.tf32_flops_per_s


def test_a_big_gemm_is_compute_bound_and_pays_one_floor():
    k = gemm("g", 4096, 4096, 4096, bias=False)
    graph = network_ms([k], NANO, "fp16", C, cuda_graph=True)
    compute_s = 2 * 4096**3 / (NANO.fp16_flops_per_s * C.tensor_efficiency)
    launch_ms = C.launch_us * REFERENCE_CPU_GHZ / NANO.cpu_ghz / 1e3
    # float64, the same few terms in another order: rounding ~1e-16, so rel 1e-12
    assert graph == pytest.approx(compute_s * 1e3 + C.kernel_floor_us / 1e3 + launch_ms, rel=1e-12)
    fp32 = network_ms([k], NANO, "fp32", C, True)
    assert fp32 - launch_ms == pytest.approx(2 * (graph - launch_ms) - 0.01, rel=1e-12)


def test_a_memory_kernel_costs_its_bytes_and_the_floor_scales_with_the_gpu_clock():
    k = memory("norm", reads=10_000_000, writes=10_000_000)
    for device in (NANO, SUPER):
        expected_us = (
            2 * 20_000_000 / (device.bandwidth_bytes_per_s * C.bandwidth_efficiency) * 1e6
            + C.kernel_floor_us * REFERENCE_GPU_MHZ / device.gpu_mhz
        )
        launch = C.launch_us * REFERENCE_CPU_GHZ / device.cpu_ghz
        expected = pytest.approx(expected_us + launch, rel=1e-12)  # float64, a few terms: rounding ~1e-16
        assert network_ms([k], device, "fp16", C, cuda_graph=True) * 1e3 == expected


def test_a_small_gemm_leaves_sms_idle():
    compute_only = Constants(**{**C.to_dict(), "bandwidth_efficiency": 1e9})
    one_tile = gemm("one tile", 64, 64, 8192, bias=False)  # 1 of 8 SMs busy
    eight = gemm("eight tiles", 64, 512, 8192, bias=False)
    t1, t8 = (network_ms([k], NANO, "fp16", compute_only, True) for k in (one_tile, eight))
    assert t8 == pytest.approx(t1, rel=1e-12)  # 8x the work in the same time (float64 rounding only)


def test_tiny_kernels_are_launch_bound_without_a_cuda_graph():
    slow_launch = Constants(**{**C.to_dict(), "launch_us": 30.0})
    kernels = [memory("tiny", 8, 8, count=20)]
    launch = 30.0 * REFERENCE_CPU_GHZ / NANO.cpu_ghz
    floor = C.kernel_floor_us
    # rel 1e-3 is not rounding: the 16 bytes each kernel moves, left out here, add <= 1e-4
    # the GPU waits for each enqueue: the last kernel starts after 20 launches
    assert network_ms(kernels, NANO, "fp16", slow_launch) * 1e3 == pytest.approx(20 * launch + floor, rel=1e-3)
    # one graph launch, then the kernels back to back
    assert network_ms(kernels, NANO, "fp16", slow_launch, cuda_graph=True) * 1e3 == pytest.approx(
        launch + 20 * floor, rel=1e-3
    )
    # with a fast CPU the GPU is the bottleneck: launches overlap the kernels
    assert network_ms(kernels, NANO, "fp16", C) * 1e3 == pytest.approx(
        C.launch_us * REFERENCE_CPU_GHZ / NANO.cpu_ghz + 20 * floor, rel=1e-3
    )


def test_precisions_are_what_edgedit_builds():
    linear = gemm("blocks.attn.qkv", 64, 64, 64, layer="qkv")
    adaln = gemm("blocks.adaLN_modulation", 1, 64, 64, layer="adaln")
    norm = memory("blocks.norm1", 64, 64, islands=("layernorm",))
    conv = Kernel("conv", "conv", 64, 64, 64)
    plan = PrecisionPlan(int8=("qkv",), high="fp16", fp32=("layernorm",))
    # typed FP16 Q/DQ: the plan's classes INT8 with FP16 out, its FP32 islands FP32, the rest FP16
    assert kernel_precision(linear, "int8", plan=plan) == Precision("int8", 1, 1, 2)
    assert kernel_precision(adaln, "int8", plan=plan).math == "fp16"
    assert (
        kernel_precision(norm, "int8", plan=plan).math == "tf32"
        and kernel_precision(norm, "best", plan=plan).math == "fp16"
    )  # weakly typed: TensorRT chooses FP16, no island
    assert kernel_precision(norm, "fp16", plan=plan).math == "tf32"  # the FP16 export keeps the same islands
    assert kernel_precision(linear, "int8-fp32", plan=plan) == Precision("int8", 1, 1, 4)  # the FP32-typed form
    assert kernel_precision(adaln, "int8-fp32", plan=plan).math == "tf32"
    # unplanned networks (the public points): every layer the precision's type; "all" = implicit INT8
    assert kernel_precision(conv, "int8", "all") == Precision("int8", 1, 1, 1)
    assert kernel_precision(norm, "int8", "all").math == "tf32" and kernel_precision(norm, "best", "all").math == "fp16"
    assert kernel_precision(conv, "fp32").math == "tf32" and kernel_precision(conv, "fp16").read_bytes == 2
    with pytest.raises(EdgeditError, match="precision must be one of"):
        kernel_precision(linear, "fp8", plan=plan)


def test_typed_graphs_pay_for_casts_and_standalone_quantizes():
    """Every Cast around an FP32 island is a reformat kernel, and an INT8 layer whose input its producer
    cannot quantize gets a quantize kernel: both appear in the workload and cost time."""
    norm = memory("blocks.norm1", 4096, 4096, islands=("layernorm",))
    proj = gemm("blocks.attn.proj", 64, 64, 64, layer="proj", fused_quantize=False)
    qkv = gemm("blocks.attn.qkv", 64, 192, 64, layer="qkv")

    def names(precision, plan):
        return [
            k.name
            for k, _ in Workload(
                [norm, qkv, proj],
                NANO,
                precision,
                plan=plan,
            ).kernels
        ]

    islands = PrecisionPlan(int8=("qkv", "proj"), high="fp16", fp32=("layernorm",))
    assert names("int8", islands) == [
        "blocks.norm1 cast in",
        "blocks.norm1 cast out",
        "blocks.norm1",
        "blocks.attn.qkv",
        "blocks.attn.proj input quantize",
        "blocks.attn.proj",
    ]
    assert names("best", islands) == [
        "blocks.norm1",
        "blocks.attn.qkv",
        "blocks.attn.proj input quantize",
        "blocks.attn.proj",
    ]
    assert names("fp16", PrecisionPlan(int8=(), high="fp16", fp32=())) == [
        "blocks.norm1",
        "blocks.attn.qkv",
        "blocks.attn.proj",
    ]
    assert network_ms([norm, qkv, proj], NANO, "int8", C, plan=islands) > network_ms(
        [norm, qkv, proj], NANO, "best", C, plan=islands
    )


def test_fp32_softmax_or_int8_attention_products_unfuse_attention():
    plan = PrecisionPlan(int8=("qkv",), high="fp16", fp32=())
    assert not unfuses_attention("int8", plan) and not unfuses_attention("fp16", plan)
    assert unfuses_attention("int8", PrecisionPlan(int8=("attention",), fp32=()))
    assert unfuses_attention("fp16", PrecisionPlan(int8=(), fp32=("softmax",)))
    assert not unfuses_attention("best", PrecisionPlan(int8=(), fp32=("softmax",)))  # weakly typed: no island


def test_power_modes_scale_as_their_clocks():
    k = [gemm("g", 2048, 2048, 2048, bias=False)]
    low, high = POWER_MODES["orin-nano-super-15w"], POWER_MODES["orin-nano-super"]
    ratio = network_ms(k, low, "fp16", C, True) / network_ms(k, high, "fp16", C, True)
    # compute-bound: GPU clock. 2% is the model's, not rounding: the launch does not scale (8e-4 here)
    assert ratio == pytest.approx(high.gpu_mhz / low.gpu_mhz, rel=0.02)
