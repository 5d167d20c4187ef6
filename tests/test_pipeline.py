"""Jobs that compose packages: quantize-then-build and its calibration policy, sampling to files."""

import json

import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.engines.build import BuildOptions
from edgedit.pipeline import build, plan_build
from tests.helpers import built


def test_dry_run_needs_no_tensorrt(exported, tmp_path):
    report = plan_build(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="int8")).engine
    assert report.plan is None and report.command[0] == "trtexec"
    assert report.command[1] == f"--onnx={tmp_path / 'onestep-cond.int8.onnx'}" and "--stronglyTyped" in report.command
    assert report.quantized_from == exported["onestep-cond"][0]
    assert list(tmp_path.iterdir()) == []


def test_int8_from_an_fp32_onnx_quantizes_first_then_builds_strongly_typed(exported, tmp_path, fake_tensorrt):
    report = build(
        plan_build(exported["onestep-uncond"][0], tmp_path / "m.plan", BuildOptions(precision="int8")), calib_samples=16
    )
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
    build(
        plan_build(exported["onestep-uncond"][0], tmp_path / "m.plan", BuildOptions(precision="best")), calib_samples=16
    )
    call = built(fake_tensorrt)
    assert not call["strongly_typed"] and call["flags"] == ["FP16", "INT8", "PREFER_PRECISION_CONSTRAINTS", "TF32"]


@pytest.mark.parametrize("given", [{"calib": "c.npz"}, {"min_psnr": 40.0}])
def test_calib_and_the_quality_budget_are_only_for_quantizing_builds(exported, tmp_path, given):
    name = next(iter(given))
    with pytest.raises(EdgeditError, match=f"`{name}` is for int8/best engines built from an FP32 ONNX"):
        plan_build(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="fp16"), **given)
    assert list(tmp_path.iterdir()) == []


def test_quantizing_first_keeps_quantizes_budget_and_force(exported, tmp_path, fake_tensorrt, caplog):
    """build-engine's quantize-first step refuses below its budget as `edgedit quantize` does (exit 1,
    nothing written), and `force` writes it anyway, saying so."""
    import logging

    from edgedit.contract.errors import CheckFailed

    logging.getLogger("edgedit").addHandler(caplog.handler)  # the CLI's logger does not propagate
    onnx = exported["onestep-uncond"][0]
    plan = plan_build(onnx, tmp_path / "m.plan", BuildOptions(precision="int8"), min_psnr=500.0)
    assert plan.quantize.min_psnr == 500.0 and not plan.quantize.force
    with pytest.raises(CheckFailed, match="no INT8 layer class meets the 500 dB budget"):
        build(plan, calib_samples=16)
    assert not (tmp_path / "m.plan").exists() and not (tmp_path / "onestep-uncond.int8.onnx").exists()
    forced = plan_build(onnx, tmp_path / "m.plan", BuildOptions(precision="int8"), min_psnr=500.0, force=True)
    try:
        build(forced, calib_samples=16)
    finally:
        logging.getLogger("edgedit").removeHandler(caplog.handler)
    assert (tmp_path / "m.plan").exists() and built(fake_tensorrt)["qdq"]
    assert any("below the 500 dB budget: written because `force` was given" in r.getMessage() for r in caplog.records)


def test_a_build_parses_each_onnx_once_and_its_plan_changes_nothing(exported, tmp_path, fake_tensorrt, monkeypatch):
    from pathlib import Path

    import edgedit.contract.onnx_header as header
    from edgedit.contract import spec

    monkeypatch.setattr(spec, "_READ", {})  # a fresh process's cache
    parsed, real = [], header.read_onnx_graph
    monkeypatch.setattr(header, "read_onnx_graph", lambda path: parsed.append(Path(path).name) or real(path))
    onnx = exported["onestep-uncond"][0]
    plan = plan_build(onnx, tmp_path / "m.plan", BuildOptions(precision="int8"))
    assert plan.quantize_first and plan.meta.precision == "fp32" and list(tmp_path.iterdir()) == []
    assert spec.read_model(onnx)[0].precision == "fp32"  # planning an INT8 build mutated no shared record
    build(plan, calib_samples=16)
    # the named file once, for the plan, the quantizer and the builder together; then the INT8 file
    # made first (checked by the quantizer where it is written, parsed by the builder where it lies)
    assert parsed[0] == "onestep-uncond.onnx" and parsed.count("onestep-uncond.onnx") == 1
    assert parsed[-1] == "onestep-uncond.int8.onnx"
