import json
import os

import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.contract.onnx_header import read_onnx_header
from edgedit.contract.spec import ModelMeta
from edgedit.engines.build import BuildOptions, build_engine, settings_for, trtexec_command
from edgedit.pipeline import plan_build
from tests.helpers import built


def meta_of(path, precision=None):
    meta = ModelMeta.from_metadata(read_onnx_header(path)[0], str(path))
    if precision:
        meta.precision = precision
    return meta


@pytest.mark.parametrize(
    "precision, onnx, strongly_typed, fp16, int8",
    [
        ("fp32", "fp32", True, False, False),
        ("fp16", "fp16", True, False, False),
        ("fp16", "fp32", False, True, False),  # the TensorRT 10 weakly typed comparison
        ("int8", "int8", True, False, False),
        ("best", "int8", False, True, True),
    ],
)
def test_builder_settings_per_precision(exported, precision, onnx, strongly_typed, fp16, int8):
    s = settings_for(meta_of(exported["onestep-cond"][0], onnx), precision)
    assert (s.strongly_typed, s.fp16_flag, s.int8_flag) == (strongly_typed, fp16, int8)


@pytest.mark.parametrize("precision, onnx", [("fp32", "fp16"), ("fp16", "int8"), ("int8", "fp16"), ("best", "fp32")])
def test_impossible_combinations_are_refused(exported, precision, onnx):
    with pytest.raises(EdgeditError, match=f"a {onnx} ONNX cannot build a {precision} engine"):
        settings_for(meta_of(exported["onestep-cond"][0], onnx), precision)


def test_profile_comes_from_the_onnx_batch_spec(exported):
    s = settings_for(meta_of(exported["onestep-cond"][0]), "fp16")  # exported with batch 1:2:4
    assert s.dynamic and s.shapes == {
        "z": {"min": [1, 1, 16, 16], "opt": [2, 1, 16, 16], "max": [4, 1, 16, 16]},
        "y": {"min": [1], "opt": [2], "max": [4]},
    }
    static = settings_for(meta_of(exported["onestep-uncond"][0]), "fp32")  # batch 4
    assert not static.dynamic and static.shapes["z"]["min"] == static.shapes["z"]["max"] == [4, 3, 8, 8]


def test_trtexec_commands(exported):
    onnx = exported["onestep-cond"][0]
    fp16 = trtexec_command("m.fp16.onnx", "m.plan", settings_for(meta_of(onnx, "fp16"), "fp16", 512, 4, "orin.tcache"))
    assert fp16 == [
        "trtexec",
        "--onnx=m.fp16.onnx",
        "--saveEngine=m.plan",
        "--stronglyTyped",
        "--minShapes=z:1x1x16x16,y:1",
        "--optShapes=z:2x1x16x16,y:2",
        "--maxShapes=z:4x1x16x16,y:4",
        "--memPoolSize=workspace:512",
        "--builderOptimizationLevel=4",
        "--profilingVerbosity=detailed",
        "--timingCacheFile=orin.tcache",
    ]
    best = trtexec_command(
        "m.int8.onnx", "m.plan", settings_for(meta_of(exported["onestep-uncond"][0], "int8"), "best")
    )
    assert best[3:6] == ["--fp16", "--int8", "--precisionConstraints=prefer"] and "--stronglyTyped" not in best
    assert not any(a.startswith("--minShapes") for a in best)  # a static ONNX needs no shapes


def test_without_tensorrt_the_build_is_refused_and_says_why(exported, tmp_path):
    with pytest.raises(EdgeditError, match="engines are built on the target device .* not portable"):
        build_engine(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="fp16"))
    assert list(tmp_path.iterdir()) == []


def test_without_a_cuda_device_the_build_is_refused(exported, tmp_path, fake_tensorrt, monkeypatch):
    import edgedit.contract.device

    monkeypatch.setattr(
        edgedit.contract.device, "cuda_devices", lambda: {"driver": None, "devices": [], "error": "none"}
    )
    with pytest.raises(EdgeditError, match="no CUDA device here"):
        build_engine(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="fp16"))


@pytest.mark.parametrize("workspace_mb", [15, (64 << 10) + 1])
def test_a_workspace_no_device_can_use_is_refused_before_anything(exported, tmp_path, workspace_mb):
    with pytest.raises(EdgeditError, match=f"`workspace_mb` {workspace_mb} is outside 16..65536"):
        plan_build(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(workspace_mb=workspace_mb))


@pytest.mark.parametrize("integrated", [True, False])
def test_the_workspace_must_fit_the_building_gpus_memory(exported, tmp_path, fake_tensorrt, monkeypatch, integrated):
    """On a Jetson (integrated GPU) the bound is the shared memory still available; on a discrete GPU
    its own memory. Nothing is built or written past it."""
    import edgedit.contract.device

    monkeypatch.setattr(
        edgedit.contract.device,
        "cuda_devices",
        lambda: {
            "driver": "12.6",
            "error": None,
            "devices": [
                {
                    "index": 0,
                    "name": "GPU (fake)",
                    "compute_capability": "8.7",
                    "memory_bytes": 8 << 30,
                    "integrated": integrated,
                }
            ],
        },
    )
    monkeypatch.setattr(edgedit.contract.device, "available_memory_bytes", lambda: 3 << 30)
    limit = 3 << 10 if integrated else 8 << 10
    with pytest.raises(EdgeditError, match=f"`workspace_mb` {limit + 1} is more than the {limit} MB GPU"):
        build_engine(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(workspace_mb=limit + 1))
    assert list(tmp_path.iterdir()) == [] and not fake_tensorrt.CALLS
    build_engine(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(workspace_mb=limit))
    assert built(fake_tensorrt)["memory_pool_limits"] == {"WORKSPACE": limit << 20}


def test_build_through_polygraphy_writes_engine_and_sidecar(exported, tmp_path, fake_tensorrt):
    onnx = exported["onestep-cond"][0]
    cache = tmp_path / "orin.tcache"
    report = build_engine(
        onnx, tmp_path / "m.plan", BuildOptions(precision="fp16", workspace_mb=768, opt_level=5, timing_cache=cache)
    )
    call = built(fake_tensorrt)
    assert call["onnx"] == str(onnx) and call["strongly_typed"] is False  # FP32 ONNX + FP16 flag
    assert call["flags"] == ["FP16", "TF32"]  # TF32 kept on, as trtexec does
    assert call["builder_optimization_level"] == 5 and call["profiling_verbosity"] == "DETAILED"
    assert call["memory_pool_limits"] == {"WORKSPACE": 768 << 20}
    assert call["profiles"] == [
        {
            "z": {"min": [1, 1, 16, 16], "opt": [2, 1, 16, 16], "max": [4, 1, 16, 16]},
            "y": {"min": [1], "opt": [2], "max": [4]},
        }
    ]
    assert call["timing_cache"] and cache.read_bytes() == b"fake timing cache"  # loaded if present, saved
    assert json.loads((tmp_path / "m.plan").read_text()) == call  # the fake engine is its build record
    sidecar = json.loads((tmp_path / "m.plan.json").read_text())
    assert sidecar["format"] == "edgedit.engine/1" and sidecar["precision"] == "fp16"
    assert sidecar["device"]["tensorrt"] == "10.3.0.30" and sidecar["device"]["gpu"] == "Orin (fake)"
    assert sidecar["device"]["compute_capability"] == "8.7"
    assert sidecar["onnx"]["metadata"] == read_onnx_header(onnx)[0] and len(sidecar["onnx"]["sha256"]) == 64
    assert [i["name"] for i in sidecar["io"]["inputs"]] == ["z", "y"]
    assert sidecar["build_seconds"] > 0 and sidecar["peak_rss_mb"] > 0
    assert sidecar["trtexec_equivalent"].startswith("trtexec --onnx=")
    # Polygraphy guards the timing cache with a lock file next to it (util.LockFile) and leaves it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.plan", "m.plan.json", "orin.tcache", "orin.tcache.lock"]
    assert report.settings.fp16_flag and not report.settings.strongly_typed


def test_a_failed_build_leaves_nothing(exported, tmp_path, fake_tensorrt, monkeypatch):
    monkeypatch.setattr(fake_tensorrt.Builder, "build_serialized_network", lambda *a: None)  # TensorRT's failure
    with pytest.raises(EdgeditError, match="TensorRT could not build onestep-cond.onnx: Invalid Engine"):
        build_engine(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="fp16"))
    assert list(tmp_path.iterdir()) == []


def test_an_unparsable_onnx_fails_in_the_parser_and_leaves_nothing(tmp_path, exported, fake_tensorrt, monkeypatch):
    monkeypatch.setattr(fake_tensorrt.OnnxParser, "parse_from_file", lambda self, path: False)
    with pytest.raises(EdgeditError, match="TensorRT could not build .*Failed to parse ONNX"):
        build_engine(exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="fp16"))
    assert list(tmp_path.iterdir()) == []


def test_trtexec_route_runs_the_binary_with_the_printed_flags(exported, tmp_path, fake_tensorrt, monkeypatch):
    log = tmp_path / "args.txt"
    fake = tmp_path / "bin" / "trtexec"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\necho "$@" > {log}\nfor a in "$@"; do case $a in --saveEngine=*) '
        f'echo plan > "${{a#--saveEngine=}}";; esac; done\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    report = build_engine(
        exported["onestep-cond"][0], tmp_path / "m.plan", BuildOptions(precision="fp16", use_trtexec=True)
    )
    args = log.read_text().split()
    assert (
        args[0] == f"--onnx={exported['onestep-cond'][0]}"
        and "--fp16" in args
        and "--minShapes=z:1x1x16x16,y:1" in args
    )
    assert (tmp_path / "m.plan").read_text() == "plan\n"
    assert report.sidecar.builder.tool == "trtexec"
