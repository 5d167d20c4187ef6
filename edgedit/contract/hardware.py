"""The deployment targets: Jetson Orin Nano modules and power modes, as clocks and peaks. Torch-free.

Orin Nano (T234, GA10B GPU, sm_87): 8 SMs of 128 CUDA cores and 4 third-generation tensor cores.
An Ampere tensor core does 512 dense INT8 ops, 256 FP16 or 128 TF32 FMAs per clock, so dense
INT8 = 8 x 4 x 1024 ops x f_gpu: 20.5 TOPS at 625 MHz, 33.4 TOPS at 1020 MHz; NVIDIA quotes
twice that with structured sparsity (40 and 67 "sparse TOPS": NVIDIA, "Jetson Orin Nano Developer
Kit Gets a Super Boost", https://developer.nvidia.com/blog/nvidia-jetson-orin-nano-developer-kit-gets-a-super-boost/).
Clocks per power mode are the caps of NVIDIA's nvpmodel configuration for the P3767-0003/0005
module (`/etc/nvpmodel/nvpmodel_p3767_0003*.conf` in Jetson Linux r36.4; `nvpmodel -q --verbose`
prints them on a device). LPDDR5 bandwidth: 128 bit x 2133 MHz x 2 = 68 GB/s, 102 GB/s at 3199 MHz.
"""

from __future__ import annotations

from dataclasses import dataclass

SMS = 8
TENSOR_CORES_PER_SM = 4
CUDA_CORES_PER_SM = 128
INT8_OPS_PER_TENSOR_CORE_CLOCK = 1024  # dense: 512 multiply-adds


@dataclass(frozen=True)
class DeviceSpec:
    """One module in one power mode, with jetson_clocks (clocks at the mode's caps)."""

    key: str
    name: str
    gpu_mhz: float
    dram_gbs: float  # shared by CPU and GPU on a Jetson
    cpu_ghz: float  # Cortex-A78AE: launches kernels and runs the host side
    sms: int = SMS

    @property
    def int8_ops_per_s(self) -> float:  # dense, tensor cores
        return self.sms * TENSOR_CORES_PER_SM * INT8_OPS_PER_TENSOR_CORE_CLOCK * self.gpu_mhz * 1e6

    @property
    def fp16_flops_per_s(self) -> float:  # dense, tensor cores (FP16 in, FP32 accumulate at the same rate on sm_87)
        return self.int8_ops_per_s / 2

    @property
    def tf32_flops_per_s(self) -> float:  # what an FP32 layer's matrix products run at (TensorRT allows TF32)
        return self.int8_ops_per_s / 4

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.dram_gbs * 1e9


# The targets every estimate is shown for.
DEVICES: dict[str, DeviceSpec] = {
    spec.key: spec
    for spec in (
        DeviceSpec("orin-nano", "Jetson Orin Nano 8GB (original 15W mode)", 625.0, 68.0, 1.51),
        DeviceSpec("orin-nano-super", "Jetson Orin Nano 8GB Super (MAXN_SUPER)", 1020.0, 102.0, 1.728),
    )
}

# Other power modes that measurements come from (calibration points, device runs).
POWER_MODES: dict[str, DeviceSpec] = {
    **DEVICES,
    **{
        spec.key: spec
        for spec in (
            DeviceSpec("orin-nano-super-15w", "Jetson Orin Nano 8GB Super (15W mode)", 612.0, 68.0, 1.498),
            DeviceSpec("orin-nano-super-25w", "Jetson Orin Nano 8GB Super (25W mode)", 918.0, 102.0, 1.344),
        )
    },
}


def device_for_mode(module: str | None, mode: str | None) -> DeviceSpec | None:
    """The spec for a Jetson's module name and nvpmodel mode name (as `edgedit doctor` reads them),
    or None when they do not name an Orin Nano mode we know."""
    if not module or not mode or "orin nano" not in module.lower():
        return None
    mode = mode.upper().replace(" ", "")
    super_ = "SUPER" in module.upper() or "SUPER" in mode
    table = {
        "MAXN_SUPER": "orin-nano-super",
        "25W": "orin-nano-super-25w",
        "15W": "orin-nano-super-15w" if super_ else "orin-nano",
    }
    key = table.get(mode)
    return POWER_MODES[key] if key else None
