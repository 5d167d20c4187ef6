"""CUDA graph capture and replay of one stream's work, through the CUDA driver API. Torch-free.

pycuda has no binding for stream capture or graphs (checked against every pycuda release from
2024.1 to 2026.1: tests/fakes/released/pycuda-2026.1.names.txt), so the five driver calls are made
with ctypes on libcuda.so.1, the library every CUDA program on the device already loads, on the
stream pycuda created (a pycuda `Stream.handle` is a CUstream). Symbols as CUDA 12.6's cuda.h
exports them (tests/fakes/released/cuda-12.6.77.driver-api.txt); semantics: CUDA Driver API,
"Stream Management" and "Graph Management"
(https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html,
https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__GRAPH.html).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from edgedit.contract.errors import EdgeditError

CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1  # only this thread's CUDA calls are restricted while capturing
_DRIVER = None


def driver():
    """libcuda.so.1 with the signatures used here (tests substitute a fake)."""
    global _DRIVER
    if _DRIVER is None:
        try:
            lib = ctypes.CDLL("libcuda.so.1")
        except OSError as err:
            raise EdgeditError(f"`cuda_graph` needs the CUDA driver (libcuda.so.1): {err}") from None
        p, pp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
        for name, args in (
            ("cuStreamBeginCapture_v2", [p, ctypes.c_int]),
            ("cuStreamEndCapture", [p, pp]),
            ("cuGraphInstantiateWithFlags", [pp, p, ctypes.c_ulonglong]),
            ("cuGraphLaunch", [p, p]),
            ("cuGraphExecDestroy", [p]),
            ("cuGraphDestroy", [p]),
        ):
            function = getattr(lib, name)
            function.argtypes, function.restype = args, ctypes.c_int
        _DRIVER = lib
    return _DRIVER


def _check(status: int, what: str) -> None:
    if status != 0:
        raise EdgeditError(f"CUDA graph: {what} failed with CUresult {status}; run without `cuda_graph`")


class CudaGraph:
    """The work `enqueue()` puts on `stream` (a CUstream handle), captured once and replayed."""

    def __init__(self, stream: int, enqueue: Callable[[], None]):
        self.lib, self.stream = driver(), ctypes.c_void_p(stream)
        self.graph, self.exec = ctypes.c_void_p(), ctypes.c_void_p()
        _check(self.lib.cuStreamBeginCapture_v2(self.stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "begin capture")
        try:
            enqueue()
        finally:  # a capture must always be ended, even when the enqueue failed
            _check(self.lib.cuStreamEndCapture(self.stream, ctypes.byref(self.graph)), "end capture")
        _check(self.lib.cuGraphInstantiateWithFlags(ctypes.byref(self.exec), self.graph, 0), "instantiate")

    def launch(self) -> None:
        _check(self.lib.cuGraphLaunch(self.exec, self.stream), "launch")

    def __del__(self) -> None:
        lib = getattr(self, "lib", None)
        if lib is not None:
            if self.exec.value:
                lib.cuGraphExecDestroy(self.exec)
            if self.graph.value:
                lib.cuGraphDestroy(self.graph)
