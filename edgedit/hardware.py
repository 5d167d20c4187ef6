"""Peak compute and memory bandwidth of the deployment targets, for roofline estimates. Torch-free.

Sources (see ../shared/notes/deploy-facts.md section 5.1): NVIDIA's Jetson Orin Nano Super
announcement and the Orin Nano datasheet give INT8 sparse TOPS and LPDDR5 bandwidth. Dense INT8
is half the sparse figure; dense FP16 on the tensor cores is half of dense INT8 (derived, and
consistent with 32 Ampere tensor cores x 256 FP16 FMA/clock x 625 MHz = 10.2 TFLOPS).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgedit.errors import EdgeditError


@dataclass(frozen=True)
class DeviceSpec:
    key: str
    name: str
    int8_sparse_tops: float
    bandwidth_gbs: float  # DRAM, shared by CPU and GPU on a Jetson

    @property
    def int8_ops_per_s(self) -> float:  # dense
        return self.int8_sparse_tops / 2 * 1e12

    @property
    def fp16_flops_per_s(self) -> float:  # dense, tensor cores
        return self.int8_sparse_tops / 4 * 1e12

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_gbs * 1e9


DEVICES: dict[str, DeviceSpec] = {
    spec.key: spec
    for spec in (
        DeviceSpec("orin-nano", "Jetson Orin Nano 8GB (15W mode, GPU 625 MHz)", 40.0, 68.0),
        DeviceSpec("orin-nano-super", "Jetson Orin Nano 8GB Super (MAXN_SUPER, GPU 1020 MHz)", 67.0, 102.0),
    )
}


def get_device(key: str) -> DeviceSpec:
    try:
        return DEVICES[key]
    except KeyError:
        raise EdgeditError(f"unknown device '{key}'; known: {', '.join(DEVICES)}") from None
