"""The TensorRT backend: run an engine (`.plan` + its sidecar) on numpy arrays. Torch-free.

TensorRT 10's tensor API (no binding indices): for every I/O tensor by name,
`set_input_shape` + `set_tensor_address`, then `execute_async_v3(stream)` (NVIDIA/TensorRT
samples/python/common_runtime.py, release/10.3). Buffers and the stream come from pycuda on the
*primary* context (`pycuda.autoprimaryctx`, the one TensorRT and other CUDA libraries share):
page-locked host buffers and device buffers sized for the engine's largest batch, allocated once.
CUDA events time the GPU side of each call (`last_gpu_ms`). With `cuda_graph=True` the enqueue is
captured into a CUDA graph per batch size (after one normal run at that size, as TensorRT requires:
shapes and addresses stay fixed while a graph replays) and replayed; pycuda has no graph API, so
`edgedit.runtime.cuda_graph` does that through the CUDA driver.

The engine is checked against the running TensorRT version and GPU *before* it is deserialized.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgedit.contract import artefacts
from edgedit.contract.deps import require
from edgedit.contract.errors import EdgeditError
from edgedit.contract.sidecar import check_compatible, read_sidecar, sidecar_meta
from edgedit.runtime.backends import Backend, RunOptions

PYCUDA_HINT = (
    "pip install pycuda inside the edgedit L4T container (it compiles against JetPack's CUDA), "
    "or pip install 'edgedit[tensorrt]'"
)


class TensorRTBackend(Backend):
    name = "tensorrt"
    suffixes = artefacts.ENGINE_READ

    def __init__(self, plan: str | os.PathLike, cuda_graph: bool = False):
        plan = Path(plan)
        record = read_sidecar(plan)
        self.meta = sidecar_meta(record, str(plan))
        trt = require("tensorrt", hint="TensorRT comes with JetPack (python3-libnvinfer); engines run on the device")
        require("pycuda.autoprimaryctx", hint=PYCUDA_HINT)  # retains the primary context on import
        self.cuda = require("pycuda.driver", hint=PYCUDA_HINT)
        gpu = self.cuda.Device(0).name()
        check_compatible(record, trt.__version__, gpu, str(plan))  # before deserializing anything
        self.device = gpu
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        free_before = self.cuda.mem_get_info()[0]  # shared with the CPU on a Jetson: the delta is this engine's
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise EdgeditError(f"{plan}: TensorRT could not deserialize the engine (see its log above); rebuild it")
        self.context = self.engine.create_execution_context()
        self.stream = self.cuda.Stream()
        self.start_event, self.end_event = self.cuda.Event(), self.cuda.Event()
        self.last_gpu_ms: float | None = None
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        expected = ([s.name for s in self.meta.inputs], [s.name for s in self.meta.outputs])
        if (sorted(self.input_names), sorted(self.output_names)) != tuple(sorted(e) for e in expected):
            raise EdgeditError(f"{plan}: engine tensors {names} disagree with its sidecar; rebuild it")
        self._allocate(self.meta.batch["max"])
        self.memory = {
            "plan_bytes": plan.stat().st_size,  # weights and kernels, as deserialized
            "engine_device_memory_bytes": int(self.engine.device_memory_size_v2),  # activations
            "load_delta_bytes": int(free_before - self.cuda.mem_get_info()[0]),
        }  # all of it, measured
        self.use_cuda_graph = cuda_graph
        self._graphs: dict[int, object] = {}  # batch size -> its captured CUDA graph

    @classmethod
    def open(cls, model: str, options: RunOptions) -> TensorRTBackend:
        return cls(model, options.cuda_graph)

    def _allocate(self, batch: int) -> None:
        """Page-locked host and device buffers for every I/O tensor at the largest batch."""
        self.host, self.device_buffers = {}, {}
        for spec in [*self.meta.inputs, *self.meta.outputs]:
            dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(spec.name)))
            host = self.cuda.pagelocked_empty(spec.concrete(batch), dtype)
            self.host[spec.name] = host
            self.device_buffers[spec.name] = self.cuda.mem_alloc(host.nbytes)
            self.context.set_tensor_address(spec.name, int(self.device_buffers[spec.name]))

    def _execute(self) -> None:
        if not self.context.execute_async_v3(stream_handle=self.stream.handle):
            raise EdgeditError("TensorRT execute_async_v3 failed (see its log above)")

    def _enqueue(self, batch: int) -> None:
        graph = self._graphs.get(batch)
        if graph is not None:
            graph.launch()
            return
        self._execute()
        if self.use_cuda_graph:  # capture after this normal run at this batch size
            from edgedit.runtime.cuda_graph import CudaGraph

            self._graphs[batch] = CudaGraph(self.stream.handle, self._execute)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = feeds[self.input_names[0]].shape[0]
        for spec in self.meta.inputs:
            view = self.host[spec.name][:batch]
            np.copyto(view, feeds[spec.name], casting="same_kind")
            self.context.set_input_shape(spec.name, spec.concrete(batch))
            self.cuda.memcpy_htod_async(self.device_buffers[spec.name], view, self.stream)
        self.start_event.record(self.stream)
        self._enqueue(batch)
        self.end_event.record(self.stream)
        outputs = {}
        for spec in self.meta.outputs:
            view = self.host[spec.name][:batch]
            self.cuda.memcpy_dtoh_async(view, self.device_buffers[spec.name], self.stream)
            outputs[spec.name] = view
        self.stream.synchronize()
        self.last_gpu_ms = self.start_event.time_till(self.end_event)
        return {name: array.astype(np.float32, copy=True) for name, array in outputs.items()}

    def gpu_memory(self) -> dict[str, int]:
        """This engine's memory (plan, activation scratch, the free-memory drop its loading caused) and
        the device's now."""
        free, total = self.cuda.mem_get_info()
        return {**self.memory, "free_bytes": int(free), "total_bytes": int(total), "used_bytes": int(total - free)}
