"""The file-name registry: every derived name from one place, and nothing else spelling them."""

import ast
from pathlib import Path

import pytest

import edgedit
from edgedit.contract import artefacts
from edgedit.contract.config import names_a_file
from edgedit.contract.fileio import suffix_kind


def test_every_derived_name():
    assert artefacts.train_state("runs/s.safetensors") == Path("runs/s.train-state.safetensors")
    assert artefacts.samples_folder("runs/s.safetensors") == Path("runs/s.samples")
    assert artefacts.teaching_assistant("runs/s.safetensors") == Path("runs/s.ta.safetensors")
    assert artefacts.onnx_data("e/m.onnx") == Path("e/m.onnx.data")
    assert artefacts.int8_onnx("e/m.onnx") == Path("e/m.int8.onnx")
    assert artefacts.int8_onnx("e/m.onnx", "engines") == Path("engines/m.int8.onnx")
    assert artefacts.precision_plan("e/m.int8.onnx") == Path("e/m.int8.precision.json")
    assert artefacts.sidecar("engines/m.fp16.plan") == Path("engines/m.fp16.plan.json")
    assert artefacts.default_engine("e/m.onnx", "int8") == Path("engines/m.int8.plan")
    assert artefacts.default_export("runs/s.safetensors", "fp16") == Path("export/s.fp16.onnx")
    assert artefacts.default_export("DiT-Nano-S/2", "fp32") == Path("export/DiT-Nano-S-2.onnx")


@pytest.mark.parametrize(
    "name, companion",
    [
        ("m.onnx", "m.onnx.data"),
        ("m.plan", "m.plan.json"),
        ("m.engine", "m.engine.json"),
        ("m.trt", "m.trt.json"),
        ("s.safetensors", "s.train-state.safetensors"),
        ("s.train-state.safetensors", None),
        ("c.npz", None),
    ],
)
def test_companions_go_with_their_file(name, companion):
    assert artefacts.companions(Path("d") / name) == ([Path("d") / companion] if companion else [])


@pytest.mark.parametrize("suffix", artefacts.ENGINE_READ)
def test_every_engine_suffix_is_read_as_an_engine(suffix):
    assert artefacts.is_engine(f"m{suffix}") and names_a_file(f"missing{suffix}")
    assert suffix_kind(f"m{suffix}") == "engine"
    from edgedit.runtime.tensorrt import TensorRTBackend

    assert suffix in TensorRTBackend.suffixes
    assert artefacts.ENGINE == ".plan" and artefacts.default_engine("m.onnx", "fp16").suffix == artefacts.ENGINE


CONVENTIONS = {
    ".safetensors",
    ".onnx",
    ".ta.safetensors",
    ".plan",
    ".engine",
    ".trt",
    ".data",
    ".samples",
    ".train-state",
    ".train-state.safetensors",
    ".int8",
    ".int8.onnx",
    ".precision.json",
}


def test_no_other_module_spells_a_file_convention():
    """A string that is exactly one of the registry's suffixes, anywhere else in the package, is a
    second home for it (messages that mention a name in prose are not such strings)."""
    package = Path(edgedit.__file__).parent
    found = []
    for path in package.rglob("*.py"):
        if path.name == "artefacts.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in CONVENTIONS:
                found.append(f"{path.relative_to(package)}:{node.lineno} {node.value!r}")
    assert found == []
