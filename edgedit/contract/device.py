"""Facts of the machine edgedit runs on: installed packages, CUDA devices, available memory. Torch-free.

Package versions come from installed distribution metadata, so nothing heavy is imported;
TensorRT on a Jetson comes from JetPack's apt package, so it is also looked up by import. CUDA
devices are listed through the CUDA driver API (libcuda.so.1, CUDA Driver API reference,
https://docs.nvidia.com/cuda/cuda-driver-api/), which exists on desktops and Jetsons alike,
without torch, pycuda or cuda-python. Used by `edgedit doctor`, engine builds (sidecars) and
bench records.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import importlib.util
import os

# (distribution name, import name)
PACKAGES = [
    ("numpy", "numpy"),
    ("torch", "torch"),
    ("safetensors", "safetensors"),
    ("onnx", "onnx"),
    ("onnxruntime", "onnxruntime"),
    ("onnxruntime-gpu", "onnxruntime"),
    ("tensorrt", "tensorrt"),
    ("polygraphy", "polygraphy"),
    ("pycuda", "pycuda"),
    ("nvidia-modelopt", "modelopt"),
]


def package_version(dist: str, module: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pass
    if dist == "tensorrt" and importlib.util.find_spec(module) is not None:
        try:  # JetPack's python3-libnvinfer may carry no pip metadata
            return getattr(importlib.import_module(module), "__version__", "unknown")
        except Exception:
            return None
    return None


def onnxruntime_providers() -> list[str] | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:
        return None


# CUDA driver API, from cuda.h
_CU_ATTR_CC_MAJOR, _CU_ATTR_CC_MINOR, _CU_ATTR_INTEGRATED = 75, 76, 18


def cuda_devices() -> dict:
    """{'driver': version or None, 'devices': [...], 'error': why none were listed, or None}."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return {"driver": None, "devices": [], "error": "no CUDA driver (libcuda.so.1 not found)"}
    status = cuda.cuInit(0)
    if status != 0:
        return {"driver": None, "devices": [], "error": f"cuInit failed with CUresult {status}"}
    version, count = ctypes.c_int(), ctypes.c_int()
    cuda.cuDriverGetVersion(ctypes.byref(version))
    cuda.cuDeviceGetCount(ctypes.byref(count))
    devices = []
    for ordinal in range(count.value):
        device = ctypes.c_int()
        cuda.cuDeviceGet(ctypes.byref(device), ordinal)
        name = ctypes.create_string_buffer(256)
        cuda.cuDeviceGetName(name, 256, device)
        attrs = {}
        for key, attr in (("major", _CU_ATTR_CC_MAJOR), ("minor", _CU_ATTR_CC_MINOR),
                          ("integrated", _CU_ATTR_INTEGRATED)):
            value = ctypes.c_int()
            cuda.cuDeviceGetAttribute(ctypes.byref(value), attr, device)
            attrs[key] = value.value
        memory = ctypes.c_size_t()
        cuda.cuDeviceTotalMem_v2(ctypes.byref(memory), device)
        devices.append({
            "index": ordinal,
            "name": name.value.decode(errors="replace"),
            "compute_capability": f"{attrs['major']}.{attrs['minor']}",
            "memory_bytes": memory.value,
            "integrated": bool(attrs["integrated"]),  # Jetson iGPU: memory shared with the CPU
        })
    driver = f"{version.value // 1000}.{version.value % 1000 // 10}"
    return {"driver": driver, "devices": devices, "error": None}


def available_memory_bytes() -> int | None:
    """Memory a new allocation can get without swapping: Linux's MemAvailable
    (https://www.kernel.org/doc/html/latest/filesystems/proc.html, /proc/meminfo), else all physical
    memory; None where neither is known. On a Jetson the GPU shares this memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None
