"""Fake `tensorrt` (10.3 API subset). See tests/fakes/README.md."""

import json

import numpy as np

__version__ = "10.3.0.30"
CALLS = []  # (what, details) of every call, for tests to inspect


class Logger:
    WARNING = 2

    def __init__(self, severity=None):
        self.severity = severity


class MemoryPoolType:
    WORKSPACE = "WORKSPACE"


class ProfilingVerbosity:
    DETAILED = "DETAILED"


class TensorIOMode:
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class DataType:
    FLOAT = "FLOAT"
    HALF = "HALF"
    INT32 = "INT32"


def nptype(dtype):
    return {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32}[dtype]


class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, data):
        CALLS.append(("deserialize", len(data)))
        try:
            return _Engine(json.loads(data))
        except (ValueError, KeyError):
            return None


class _Engine:
    def __init__(self, record):
        import onnxruntime

        self.record = record
        self.session = onnxruntime.InferenceSession(record["onnx"], providers=["CPUExecutionProvider"])
        types = {"tensor(float)": DataType.FLOAT, "tensor(float16)": DataType.HALF, "tensor(int32)": DataType.INT32}
        self.tensors = [(i.name, TensorIOMode.INPUT, types[i.type]) for i in self.session.get_inputs()]
        self.tensors += [(o.name, TensorIOMode.OUTPUT, types[o.type]) for o in self.session.get_outputs()]

    @property
    def num_io_tensors(self):
        return len(self.tensors)

    def get_tensor_name(self, index):
        return self.tensors[index][0]

    def get_tensor_mode(self, name):
        return next(mode for n, mode, _ in self.tensors if n == name)

    def get_tensor_dtype(self, name):
        return next(dtype for n, _, dtype in self.tensors if n == name)

    def create_execution_context(self):
        return _Context(self)


class _Context:
    def __init__(self, engine):
        self.engine = engine
        self.shapes, self.addresses = {}, {}

    def set_input_shape(self, name, shape):
        CALLS.append(("set_input_shape", (name, tuple(shape))))
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, address):
        CALLS.append(("set_tensor_address", (name, address)))
        self.addresses[name] = address

    def execute_async_v3(self, stream_handle):
        from pycuda import driver

        stream = driver.STREAMS[stream_handle]
        missing = [n for n, _, _ in self.engine.tensors if n not in self.addresses]
        if missing:
            raise RuntimeError(f"tensor addresses not set: {missing}")
        stream.enqueue(self._execute)
        CALLS.append(("execute_async_v3", stream_handle))
        return True

    def _execute(self):
        from pycuda import driver

        feeds = {}
        for name, mode, dtype in self.engine.tensors:
            if mode == TensorIOMode.INPUT:
                shape = self.shapes[name]
                size = int(np.prod(shape)) * np.dtype(nptype(dtype)).itemsize
                feeds[name] = driver.MEMORY[self.addresses[name]][:size].view(nptype(dtype)).reshape(shape)
        outputs = self.engine.session.run(None, feeds)
        for (name, _, dtype), value in zip([t for t in self.engine.tensors if t[1] == TensorIOMode.OUTPUT], outputs):
            raw = np.ascontiguousarray(value.astype(nptype(dtype))).view(np.uint8).ravel()
            driver.MEMORY[self.addresses[name]][: raw.size] = raw
