"""The kernel cost model reduces to its terms: compute, memory, floor, launch, graph."""

import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.contract.hardware import DEVICES, POWER_MODES
from edgedit.cost.kernels import Kernel, gemm, memory
from edgedit.cost.latency import REFERENCE_CPU_GHZ, REFERENCE_GPU_MHZ, Constants, kernel_precision, network_ms

C = Constants(tensor_efficiency=0.5, conv_efficiency=0.25, int8_efficiency=0.8, bandwidth_efficiency=0.5,
              kernel_floor_us=10.0, launch_us=6.0)
NANO, SUPER = DEVICES["orin-nano"], DEVICES["orin-nano-super"]


def test_peaks_follow_the_tensor_cores_and_clock():
    # 8 SMs x 4 tensor cores x 1024 INT8 ops per clock: 20.5 TOPS at 625 MHz, half of NVIDIA's 40 sparse TOPS
    assert NANO.int8_ops_per_s == pytest.approx(20.48e12)
    assert SUPER.int8_ops_per_s == pytest.approx(33.42e12, rel=1e-3)
    assert NANO.fp16_flops_per_s == NANO.int8_ops_per_s / 2 == 2 * NANO.tf32_flops_per_s


def test_a_big_gemm_is_compute_bound_and_pays_one_floor():
    k = gemm("g", 4096, 4096, 4096, bias=False)
    graph = network_ms([k], NANO, "fp16", C, cuda_graph=True)
    compute_s = 2 * 4096**3 / (NANO.fp16_flops_per_s * C.tensor_efficiency)
    launch_ms = C.launch_us * REFERENCE_CPU_GHZ / NANO.cpu_ghz / 1e3
    assert graph == pytest.approx(compute_s * 1e3 + C.kernel_floor_us / 1e3 + launch_ms)
    assert network_ms([k], NANO, "fp32", C, True) - launch_ms == pytest.approx(2 * (graph - launch_ms) - 0.01, rel=1e-6)


def test_a_memory_kernel_costs_its_bytes_and_the_floor_scales_with_the_gpu_clock():
    k = memory("norm", reads=10_000_000, writes=10_000_000)
    for device in (NANO, SUPER):
        expected_us = 2 * 20_000_000 / (device.bandwidth_bytes_per_s * C.bandwidth_efficiency) * 1e6 \
            + C.kernel_floor_us * REFERENCE_GPU_MHZ / device.gpu_mhz
        launch = C.launch_us * REFERENCE_CPU_GHZ / device.cpu_ghz
        assert network_ms([k], device, "fp16", C, cuda_graph=True) * 1e3 == pytest.approx(expected_us + launch)


def test_a_small_gemm_leaves_sms_idle():
    compute_only = Constants(**{**C.to_dict(), "bandwidth_efficiency": 1e9})
    one_tile = gemm("one tile", 64, 64, 8192, bias=False)  # 1 of 8 SMs busy
    eight = gemm("eight tiles", 64, 512, 8192, bias=False)
    t1, t8 = (network_ms([k], NANO, "fp16", compute_only, True) for k in (one_tile, eight))
    assert t8 == pytest.approx(t1, rel=1e-6)  # 8x the work in the same time


def test_tiny_kernels_are_launch_bound_without_a_cuda_graph():
    slow_launch = Constants(**{**C.to_dict(), "launch_us": 30.0})
    kernels = [memory("tiny", 8, 8, count=20)]
    launch = 30.0 * REFERENCE_CPU_GHZ / NANO.cpu_ghz
    floor = C.kernel_floor_us
    # the GPU waits for each enqueue: the last kernel starts after 20 launches
    assert network_ms(kernels, NANO, "fp16", slow_launch) * 1e3 == pytest.approx(20 * launch + floor, rel=1e-3)
    # one graph launch, then the kernels back to back
    assert network_ms(kernels, NANO, "fp16", slow_launch, cuda_graph=True) * 1e3 == pytest.approx(launch + 20 * floor,
                                                                                                 rel=1e-3)
    # with a fast CPU the GPU is the bottleneck: launches overlap the kernels
    assert network_ms(kernels, NANO, "fp16", C) * 1e3 == pytest.approx(C.launch_us * REFERENCE_CPU_GHZ / NANO.cpu_ghz
                                                                       + 20 * floor, rel=1e-3)


def test_precisions_are_what_edgedit_builds():
    linear = gemm("blocks.attn.qkv", 64, 64, 64, quantized=True)
    adaln = gemm("blocks.adaLN_modulation", 1, 64, 64)
    conv = Kernel("conv", "conv", 64, 64, 64)
    assert kernel_precision(linear, "int8").math == "int8" and kernel_precision(linear, "int8").write_bytes == 4
    assert kernel_precision(adaln, "int8").math == "tf32"  # strongly typed Q/DQ: the rest stays FP32
    assert kernel_precision(adaln, "best").math == "fp16"  # FP16 + INT8 flags
    assert kernel_precision(linear, "best").write_bytes == 2
    assert kernel_precision(conv, "int8").math == "tf32" and kernel_precision(conv, "int8", "all").math == "int8"
    assert kernel_precision(conv, "fp32").math == "tf32" and kernel_precision(conv, "fp16").read_bytes == 2
    with pytest.raises(EdgeditError, match="precision must be one of"):
        kernel_precision(linear, "fp8")


def test_power_modes_scale_as_their_clocks():
    k = [gemm("g", 2048, 2048, 2048, bias=False)]
    low, high = POWER_MODES["orin-nano-super-15w"], POWER_MODES["orin-nano-super"]
    ratio = network_ms(k, low, "fp16", C, True) / network_ms(k, high, "fp16", C, True)
    assert ratio == pytest.approx(high.gpu_mhz / low.gpu_mhz, rel=0.02)  # compute-bound: GPU clock
