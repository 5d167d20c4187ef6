"""Our TensorRT, pycuda, CUDA-driver and trtexec usage against NVIDIA's and pycuda's released artefacts.

The fakes in tests/fakes are ours and could share our mistakes; the name lists in
tests/fakes/released were extracted from the released packages (each file's header says which,
with its sha256). Every name the fakes define and every name edgedit calls must exist there, and
every trtexec flag edgedit prints must be one TensorRT 10.3's trtexec parses.
"""

from __future__ import annotations

import ast
import enum
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "tests" / "fakes" / "released"
FAKES = ROOT / "tests" / "fakes"
REAL_DUNDERS = {"__bool__", "__len__", "__getitem__", "__enter__", "__exit__", "__int__", "__index__"}
TRT_BASES = {"Logger": "ILogger"}  # pybind11 classes whose members are inherited in the real bindings


def names(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def public_surface(module) -> set[str]:
    """Module-level functions and classes, and Class.member for what each class defines, its
    instance attributes (`self.x = ...`) included; names starting with _ are the fake's own."""
    found = set()
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        found.add(name)
        if inspect.isclass(value) and issubclass(value, enum.Enum):
            found |= {f"{name}.{member}" for member in value.__members__}
        elif inspect.isclass(value):
            members = set(vars(value))
            for node in ast.walk(ast.parse(inspect.getsource(value))):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.ctx, ast.Store)
                    and ast.unparse(node.value) == "self"
                ):
                    members.add(node.attr)
            found |= {f"{name}.{m}" for m in members if not m.startswith("_") or m in REAL_DUNDERS}
    return found


def attributes_of(source: Path, owners: set[str]) -> set[str]:
    """`x.NAME` in `source` where x is one of `owners` (e.g. trt, self.trt): the names edgedit calls."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Attribute):
            owner = ast.unparse(node.value)
            if owner in owners:
                found.add(node.attr)
    return found


#################################################################################
#                                    TensorRT                                   #
#################################################################################

TRT_10 = names(RELEASED / "tensorrt-10.3.0.names.txt")
TRT_11 = names(RELEASED / "tensorrt-11.4.0.106.names.txt")


def exists(name: str, released: set[str]) -> bool:
    owner, _, member = name.partition(".")
    return name in released or (member and f"{TRT_BASES.get(owner)}.{member}" in released)


def test_every_name_of_the_tensorrt_fake_is_a_tensorrt_10_3_name(fake_tensorrt):
    surface = public_surface(fake_tensorrt)
    assert len(surface) > 80
    missing = sorted(n for n in surface if not exists(n, TRT_10))
    assert missing == []


def test_every_tensorrt_name_edgedit_calls_is_in_the_fake_and_in_tensorrt_10_3(fake_tensorrt):
    used = set()
    for module in ("edgedit/engines/build.py", "edgedit/runtime/tensorrt.py"):
        used |= attributes_of(
            ROOT / module,
            {"trt", "self.trt", "trt.Logger", "trt.TensorIOMode", "trt.MemoryPoolType", "trt.ProfilingVerbosity"},
        )
    used -= {"__version__"}
    assert {"Runtime", "nptype", "TensorIOMode", "INPUT", "WORKSPACE", "DETAILED"} <= used
    fake = {n.split(".")[-1] for n in public_surface(fake_tensorrt)}
    assert sorted(used - fake) == []
    assert sorted(n for n in used if n not in TRT_10) == []


def test_what_tensorrt_11_removed_from_our_paths(fake_tensorrt):
    """The weakly typed builder flags (edgedit's `fp16` from an FP32 ONNX and `best`), and names only
    Polygraphy 0.49 reads (precision of layers, the INT8 calibrator, EXPLICIT_BATCH before 10.0)."""
    gone = sorted(n for n in public_surface(fake_tensorrt) if not exists(n, TRT_11))
    assert gone == [
        "BuilderFlag.FP16",
        "BuilderFlag.INT8",
        "BuilderFlag.OBEY_PRECISION_CONSTRAINTS",
        "BuilderFlag.PREFER_PRECISION_CONSTRAINTS",
        "IBuilderConfig.int8_calibrator",
        "ILayer.precision",
        "ILayer.precision_is_set",
        "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
    ]


#################################################################################
#                              pycuda, CUDA driver                              #
#################################################################################

PYCUDA = names(RELEASED / "pycuda-2026.1.names.txt")
CUDA = names(RELEASED / "cuda-12.6.77.driver-api.txt")


def test_every_name_of_the_pycuda_fake_and_every_pycuda_call_is_pycudas(fake_tensorrt):
    from pycuda import driver

    fake = public_surface(driver)
    assert sorted(n for n in fake if n not in PYCUDA) == []
    used = attributes_of(ROOT / "edgedit/runtime/tensorrt.py", {"self.cuda", "self.stream", "self.start_event"})
    assert {"mem_alloc", "pagelocked_empty", "memcpy_htod_async", "Stream", "Event", "handle", "record"} <= used
    flat = {n.split(".")[-1] for n in PYCUDA}
    assert sorted(used - flat) == []


def test_pycuda_has_no_graph_api_so_graphs_go_through_the_driver():
    assert not any(re.search(r"capture|Graph", n) for n in PYCUDA)


def test_every_cuda_driver_symbol_edgedit_or_the_fake_uses_is_exported_by_cuda_12_6(fake_tensorrt):
    import libcuda

    called = set()
    for module in ("edgedit/runtime/cuda_graph.py", "edgedit/contract/device.py"):
        text = (ROOT / module).read_text()
        called |= set(re.findall(r"\b(cu[A-Z]\w+)\b", text))
    fake = {n for n in public_surface(libcuda) if "." not in n}
    assert {"cuStreamBeginCapture_v2", "cuGraphLaunch", "cuInit", "cuDeviceTotalMem_v2"} <= called
    assert fake <= called
    assert sorted(called - CUDA) == []
    assert "CU_STREAM_CAPTURE_MODE_THREAD_LOCAL" in CUDA


#################################################################################
#                                    trtexec                                    #
#################################################################################

TRTEXEC = names(RELEASED / "trtexec-10.3.options.txt")


@pytest.mark.parametrize(
    "precision, onnx", [("fp32", "fp32"), ("fp16", "fp16"), ("fp16", "fp32"), ("int8", "int8"), ("best", "int8")]
)
def test_every_trtexec_flag_we_print_is_a_trtexec_10_3_option(exported, precision, onnx):
    from edgedit.contract.onnx_header import read_onnx_header
    from edgedit.contract.spec import ModelMeta
    from edgedit.engines.build import settings_for, trtexec_command

    for model in ("onestep-cond", "onestep-uncond"):  # dynamic and static batch
        meta = ModelMeta.from_metadata(read_onnx_header(exported[model][0])[0], "m")
        meta.precision = onnx
        command = trtexec_command("m.onnx", "m.plan", settings_for(meta, precision, timing_cache="t.cache"))
        flags = {arg.split("=")[0] for arg in command[1:]}
        assert sorted(flags - TRTEXEC) == []
