"""Fake `tensorrt`: the TensorRT 10.3 Python API surface that edgedit and the real Polygraphy call.

Every public name here (classes, their members, enum values, functions) is a real TensorRT 10.3
name: tests/test_released_apis.py checks them against the names bound in NVIDIA's
tensorrt-cu12-bindings 10.3.0 wheel. The builder records how it was asked to build; the "engine"
is that record as JSON, and executing it runs the ONNX it was parsed from with ONNX Runtime (CPU).
Device memory is pycuda's fake (tests/fakes/pycuda). See tests/fakes/README.md.
"""

import enum
import json
from typing import ClassVar

import numpy as np

__version__ = "10.3.0.30"
CALLS = []  # (what, details) of calls tests inspect


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4


def nptype(dtype):
    return {
        DataType.FLOAT: np.float32,
        DataType.HALF: np.float16,
        DataType.INT8: np.int8,
        DataType.INT32: np.int32,
        DataType.BOOL: np.bool_,
    }[dtype]


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 1
    TF32 = 6
    OBEY_PRECISION_CONSTRAINTS = 9
    PREFER_PRECISION_CONSTRAINTS = 10


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4


class ProfilingVerbosity(enum.IntEnum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class LayerType(enum.IntEnum):
    CONVOLUTION = 0
    MATRIX_MULTIPLY = 1
    ELEMENTWISE = 2
    SHAPE = 3
    QUANTIZE = 4
    DEQUANTIZE = 5


class DeviceType(enum.IntEnum):
    GPU = 0
    DLA = 1


class ILogger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self):
        pass

    def log(self, severity, msg):
        pass


class Logger(ILogger):
    def __init__(self, min_severity=ILogger.WARNING):
        super().__init__()
        self.min_severity = min_severity


def init_libnvinfer_plugins(logger, namespace):
    return True


class IHostMemory(bytes):
    """Serialized data (an engine, a timing cache): bytes, and a context manager as in TensorRT."""

    @property
    def nbytes(self):
        return len(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


#################################################################################
#                          Network, parser, builder                             #
#################################################################################


class ITensor:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype
        self.is_shape_tensor = False


class ILayer:
    def __init__(self, name, type_):
        self.name, self.type = name, type_
        self.precision, self.precision_is_set = DataType.FLOAT, False


class INetworkDefinition:
    def __init__(self, flags):
        self.flags = flags
        self._inputs, self._layers, self._onnx = [], [], None

    def get_flag(self, flag):
        return bool(self.flags & (1 << int(flag)))

    @property
    def num_inputs(self):
        return len(self._inputs)

    def get_input(self, index):
        return self._inputs[index]

    @property
    def num_layers(self):
        return len(self._layers)

    def get_layer(self, index):
        return self._layers[index]

    def __len__(self):
        return len(self._layers)

    def __getitem__(self, index):
        return self._layers[index]


class OnnxParser:
    """Reads the ONNX file's inputs and nodes (with the onnx package) into the fake network."""

    _ONNX_TYPES: ClassVar[dict[int, DataType]] = {1: DataType.FLOAT, 10: DataType.HALF, 6: DataType.INT32}
    _LAYERS: ClassVar[dict[str, LayerType]] = {
        "QuantizeLinear": LayerType.QUANTIZE,
        "DequantizeLinear": LayerType.DEQUANTIZE,
        "MatMul": LayerType.MATRIX_MULTIPLY,
        "Conv": LayerType.CONVOLUTION,
    }

    def __init__(self, network, logger):
        self._network, self._errors = network, []

    @property
    def num_errors(self):
        return len(self._errors)

    def get_error(self, index):
        return self._errors[index]

    def parse_from_file(self, model):
        import onnx

        try:
            proto = onnx.load(model, load_external_data=False)
        except Exception as err:  # what TensorRT reports as a parser error
            self._errors.append(f"ModelImporter: failed to parse {model}: {err}")
            return False
        for value in proto.graph.input:
            t = value.type.tensor_type
            shape = [d.dim_value if d.dim_value else -1 for d in t.shape.dim]
            self._network._inputs.append(ITensor(value.name, shape, self._ONNX_TYPES[t.elem_type]))
        self._network._layers = [
            ILayer(n.name, self._LAYERS.get(n.op_type, LayerType.ELEMENTWISE)) for n in proto.graph.node
        ]
        self._network._onnx = str(model)
        CALLS.append(("parse_from_file", str(model)))
        return True


class IOptimizationProfile:
    def __init__(self):
        self._shapes = {}

    def set_shape(self, input, min, opt, max):
        self._shapes[input] = {"min": list(min), "opt": list(opt), "max": list(max)}

    def get_shape(self, input):
        s = self._shapes[input]
        return [s["min"], s["opt"], s["max"]]

    def __bool__(self):
        return bool(self._shapes)


class ITimingCache:
    def __init__(self, data):
        self._data = bytes(data)

    def combine(self, input_cache, ignore_mismatch):
        return True

    def serialize(self):
        return IHostMemory(self._data or b"fake timing cache")


class IBuilderConfig:
    def __init__(self):
        self.flags = 1 << int(BuilderFlag.TF32)  # TensorRT allows TF32 by default
        self._pools, self._profiles, self._timing_cache = {}, [], None
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self.builder_optimization_level = 3
        self.DLA_core, self.default_device_type = -1, DeviceType.GPU
        self.int8_calibrator = None

    def set_flag(self, flag):
        self.flags |= 1 << int(flag)

    def clear_flag(self, flag):
        self.flags &= ~(1 << int(flag))

    def get_flag(self, flag):
        return bool(self.flags & (1 << int(flag)))

    def set_memory_pool_limit(self, pool, pool_size):
        self._pools[pool] = pool_size

    def get_memory_pool_limit(self, pool):
        return self._pools.get(pool, 0)

    def add_optimization_profile(self, profile):
        self._profiles.append(profile)
        return len(self._profiles) - 1

    @property
    def num_optimization_profiles(self):
        return len(self._profiles)

    def create_timing_cache(self, serialized_timing_cache):
        return ITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache, ignore_mismatch):
        self._timing_cache = cache
        return True

    def get_timing_cache(self):
        return self._timing_cache


class Builder:
    def __init__(self, logger):
        self.logger = logger

    def create_network(self, flags=0):
        return INetworkDefinition(flags)

    def create_builder_config(self):
        return IBuilderConfig()

    def create_optimization_profile(self):
        return IOptimizationProfile()

    def build_serialized_network(self, network, config):
        record = {
            "onnx": network._onnx,
            "strongly_typed": network.get_flag(NetworkDefinitionCreationFlag.STRONGLY_TYPED),
            "flags": sorted(f.name for f in BuilderFlag if config.get_flag(f)),
            "profiles": [p._shapes for p in config._profiles],
            "memory_pool_limits": {p.name: v for p, v in config._pools.items()},
            "builder_optimization_level": config.builder_optimization_level,
            "profiling_verbosity": ProfilingVerbosity(config.profiling_verbosity).name,
            "timing_cache": config._timing_cache is not None,
            "qdq": any(layer.type in (LayerType.QUANTIZE, LayerType.DEQUANTIZE) for layer in network._layers),
        }
        CALLS.append(("build_serialized_network", record))
        return IHostMemory(json.dumps(record).encode())


#################################################################################
#                               Runtime, engine                                 #
#################################################################################


class Runtime:
    def __init__(self, logger):
        self._logger = logger

    def deserialize_cuda_engine(self, serialized_engine):
        CALLS.append(("deserialize", len(serialized_engine)))
        try:
            return ICudaEngine(json.loads(serialized_engine))
        except (ValueError, KeyError):
            return None


class ICudaEngine:
    def __init__(self, record):
        import onnxruntime

        self._record = record
        self._session = onnxruntime.InferenceSession(record["onnx"], providers=["CPUExecutionProvider"])
        types = {"tensor(float)": DataType.FLOAT, "tensor(float16)": DataType.HALF, "tensor(int32)": DataType.INT32}
        self._tensors = [(i.name, TensorIOMode.INPUT, types[i.type]) for i in self._session.get_inputs()]
        self._tensors += [(o.name, TensorIOMode.OUTPUT, types[o.type]) for o in self._session.get_outputs()]

    @property
    def num_io_tensors(self):
        return len(self._tensors)

    @property
    def device_memory_size_v2(self):
        return 1 << 20  # activation scratch of the fake engine

    def get_tensor_name(self, index):
        return self._tensors[index][0]

    def get_tensor_mode(self, name):
        return next(mode for n, mode, _ in self._tensors if n == name)

    def get_tensor_dtype(self, name):
        return next(dtype for n, _, dtype in self._tensors if n == name)

    def create_execution_context(self):
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine):
        self._engine = engine
        self._shapes, self._addresses = {}, {}

    def set_input_shape(self, name, shape):
        CALLS.append(("set_input_shape", (name, tuple(shape))))
        self._shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, memory):
        CALLS.append(("set_tensor_address", (name, memory)))
        self._addresses[name] = memory
        return True

    def execute_async_v3(self, stream_handle):
        from pycuda import driver

        missing = [n for n, _, _ in self._engine._tensors if n not in self._addresses]
        if missing:
            raise RuntimeError(f"tensor addresses not set: {missing}")
        driver._STREAMS[stream_handle]._enqueue(self._execute)
        CALLS.append(("execute_async_v3", stream_handle))
        return True

    def _execute(self):
        from pycuda import driver

        feeds = {}
        for name, mode, dtype in self._engine._tensors:
            if mode == TensorIOMode.INPUT:
                shape = self._shapes[name]
                size = int(np.prod(shape)) * np.dtype(nptype(dtype)).itemsize
                feeds[name] = driver._MEMORY[self._addresses[name]][:size].view(nptype(dtype)).reshape(shape)
        outputs = self._engine._session.run(None, feeds)
        for (name, _, dtype), value in zip([t for t in self._engine._tensors if t[1] == TensorIOMode.OUTPUT], outputs):
            raw = np.ascontiguousarray(value.astype(nptype(dtype))).view(np.uint8).ravel()
            driver._MEMORY[self._addresses[name]][: raw.size] = raw
