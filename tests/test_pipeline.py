"""Jobs that compose packages: quantize-then-build and its calibration policy, sampling to files."""

import json

import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.engines.build import BuildOptions
from edgedit.pipeline import build
from tests.helpers import built


def test_dry_run_needs_no_tensorrt(exported, tmp_path):
    report = build(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="int8"), dry_run=True)
    assert report.plan is None and report.command[0] == "trtexec"
    assert report.command[1] == f"--onnx={tmp_path / 'onestep-cond.int8.onnx'}" and "--stronglyTyped" in report.command
    assert report.quantized_from == exported["onestep-cond"][0]
    assert list(tmp_path.iterdir()) == []


def test_int8_from_an_fp32_onnx_quantizes_first_then_builds_strongly_typed(exported, tmp_path, fake_tensorrt):
    report = build(exported["onestep-uncond"][0], tmp_path / "m.plan", BuildOptions(precision="int8"), calib_samples=16)
    call = built(fake_tensorrt)
    assert call["strongly_typed"] is True and call["flags"] == ["TF32"] and call["qdq"]
    assert (
        call["onnx"] == str(tmp_path / "onestep-uncond.int8.onnx")
        and report.quantized_from == exported["onestep-uncond"][0]
    )
    sidecar = json.loads((tmp_path / "m.plan.json").read_text())
    assert sidecar["onnx"]["quantized_from"] == "onestep-uncond.onnx" and sidecar["strongly_typed"]
    assert sidecar["onnx"]["metadata"]["edgedit.precision"] == "int8"


def test_best_sets_fp16_int8_and_prefers_the_qdq_precisions(exported, tmp_path, fake_tensorrt):
    build(exported["onestep-uncond"][0], tmp_path / "m.plan", BuildOptions(precision="best"), calib_samples=16)
    call = built(fake_tensorrt)
    assert not call["strongly_typed"] and call["flags"] == ["FP16", "INT8", "PREFER_PRECISION_CONSTRAINTS", "TF32"]


def test_calib_is_only_for_quantizing_builds(exported, tmp_path):
    with pytest.raises(EdgeditError, match="--calib is for int8/best engines"):
        build(
            exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="fp16"), calib=tmp_path / "c.npz"
        )
