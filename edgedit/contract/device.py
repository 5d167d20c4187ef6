"""Facts of the machine edgedit runs on: installed packages, CUDA devices, available memory. Torch-free.

Package versions come from installed distribution metadata, so nothing heavy is imported;
TensorRT on a Jetson comes from JetPack's apt package, so it is also looked up by import. CUDA
devices are listed through the CUDA driver API (libcuda.so.1, CUDA Driver API reference,
https://docs.nvidia.com/cuda/cuda-driver-api/), which exists on desktops and Jetsons alike,
without torch, pycuda or cuda-python. Used by `edgedit doctor`, engine builds (sidecars) and
bench records.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path

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
        for key, attr in (
            ("major", _CU_ATTR_CC_MAJOR),
            ("minor", _CU_ATTR_CC_MINOR),
            ("integrated", _CU_ATTR_INTEGRATED),
        ):
            value = ctypes.c_int()
            cuda.cuDeviceGetAttribute(ctypes.byref(value), attr, device)
            attrs[key] = value.value
        memory = ctypes.c_size_t()
        cuda.cuDeviceTotalMem_v2(ctypes.byref(memory), device)
        devices.append(
            {
                "index": ordinal,
                "name": name.value.decode(errors="replace"),
                "compute_capability": f"{attrs['major']}.{attrs['minor']}",
                "memory_bytes": memory.value,
                "integrated": bool(attrs["integrated"]),  # Jetson iGPU: memory shared with the CPU
            }
        )
    driver = f"{version.value // 1000}.{version.value % 1000 // 10}"
    return {"driver": driver, "devices": devices, "error": None}


def available_memory_bytes(
    meminfo: Path = Path("/proc/meminfo"),
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    self_cgroup: Path = Path("/proc/self/cgroup"),
) -> int | None:
    """Memory a new allocation can get without swapping or meeting a container's limit: Linux's
    MemAvailable (https://www.kernel.org/doc/html/latest/filesystems/proc.html, /proc/meminfo), else
    all physical memory, and no more than this process's cgroup still allows (`docker run --memory`:
    L4T containers are often started with one); None where nothing is known. On a Jetson the GPU
    shares this memory. The one answer every memory check in edgedit uses."""
    available = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    if available is None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    headroom = cgroup_memory_headroom(cgroup_root, self_cgroup)
    if headroom is None:
        return available
    return headroom if available is None else min(available, headroom)


_NO_LIMIT = 1 << 62  # cgroup v1 writes "unlimited" as a page-rounded 2^63 - 1


def cgroup_memory_headroom(
    root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")
) -> int | None:
    """Bytes the tightest memory limit over this process's cgroup and its ancestors still allows (the
    limit minus the working set: usage less inactive file cache, which the kernel reclaims first, as
    `docker stats` counts it), or None where no limit is set. cgroup v2 (memory.max, memory.current,
    https://docs.kernel.org/admin-guide/cgroup-v2.html#memory-interface-files) and v1
    (memory.limit_in_bytes, memory.usage_in_bytes,
    https://docs.kernel.org/admin-guide/cgroup-v1/memory.html); inside a container the cgroup
    namespace's root is the mount's root."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    tightest = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            base, files = root, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            base, files = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        for folder in _cgroup_folders(base, path):
            headroom = _headroom(folder, *files)
            if headroom is not None:
                tightest = headroom if tightest is None else min(tightest, headroom)
    return tightest


def _cgroup_folders(base: Path, path: str) -> list[Path]:
    """The process's cgroup folder and its ancestors up to the mount's root; the root alone where the
    path is not under the mount (a container's own cgroup namespace)."""
    own = base.joinpath(*[p for p in path.split("/") if p not in ("", ".", "..")])
    if not own.is_dir():
        return [base]
    folders = [own]
    while folders[-1] != base:
        folders.append(folders[-1].parent)
    return folders


def _headroom(folder: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    try:
        limit_text = (folder / limit_file).read_text().strip()
        if limit_text == "max" or int(limit_text) >= _NO_LIMIT:
            return None
        limit, usage = int(limit_text), int((folder / usage_file).read_text().strip())
    except (OSError, ValueError):
        return None
    inactive = 0
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == inactive_key:
                inactive = int(value)
    except (OSError, ValueError):
        pass
    return max(0, limit - max(0, usage - inactive))
