import json

import numpy as np
import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.engines.build import BuildOptions
from edgedit.pipeline import build, plan_build
from edgedit.runtime.backends import RunOptions, load_backend
from edgedit.runtime.onnxruntime import OnnxRuntimeBackend
from edgedit.runtime.samplers import generate
from tests.helpers import has_real_tensorrt


@pytest.fixture
def engine(exported, tmp_path, fake_tensorrt):
    return build(plan_build(exported["edm-cond"][0], tmp_path / "edm.plan", BuildOptions(precision="fp16"))).plan


def test_tensorrt_backend_samples_like_onnxruntime(exported, engine, fake_tensorrt):
    backend = load_backend(engine)
    assert backend.name == "tensorrt" and backend.device == "Orin (fake)" and backend.precision == "fp16"
    seeds = [0, 1, 2, 3, 4]
    got = generate(backend, seeds, batch=4, steps=4)
    want = generate(OnnxRuntimeBackend(exported["edm-cond"][0], "cpu"), seeds, batch=4, steps=4)
    # The fake engine runs this ONNX file in ONNX Runtime on the same feeds: equal bits here, so 1e-5 (~10 ulp
    # of float32 images up to ~8) only has to catch the plumbing, where a wrong buffer or row is off by ~1.
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert backend.last_gpu_ms == 0.25  # from the CUDA events


def test_every_io_tensor_is_bound_and_shapes_follow_the_batch(engine, fake_tensorrt):
    backend = load_backend(engine)
    bound = {name for what, (name, _) in ((w, d) for w, d in fake_tensorrt.CALLS if w == "set_tensor_address")}
    assert bound == {"x", "sigma", "y", "denoised"}
    fake_tensorrt.CALLS.clear()
    backend.run(
        {"x": np.zeros((3, 1, 16, 16), np.float32), "sigma": np.ones(3, np.float32), "y": np.zeros(3, np.int32)}
    )
    shapes = [d for w, d in fake_tensorrt.CALLS if w == "set_input_shape"]
    assert shapes == [("x", (3, 1, 16, 16)), ("sigma", (3,)), ("y", (3,))]
    assert [w for w, _ in fake_tensorrt.CALLS].count("execute_async_v3") == 1
    memory = backend.gpu_memory()
    assert memory["used_bytes"] > 0 and memory["plan_bytes"] == engine.stat().st_size
    assert memory["engine_device_memory_bytes"] == 1 << 20  # the fake engine's scratch
    # The fake's free memory drops by exactly the I/O buffers allocated at the largest batch (4).
    assert memory["load_delta_bytes"] == 4 * (16 * 16 * 4 + 4 + 4) + 4 * 16 * 16 * 4


def test_cuda_graph_is_captured_once_for_a_static_engine(exported, tmp_path, fake_tensorrt):
    import libcuda

    plan = build(
        plan_build(exported["onestep-uncond"][0], tmp_path / "s.plan", BuildOptions(precision="fp32"))
    ).plan  # static batch 4
    backend = load_backend(plan, options=RunOptions(cuda_graph=True))
    feeds = {"z": np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)}
    reference = OnnxRuntimeBackend(exported["onestep-uncond"][0], "cpu").run(feeds)["image"]
    outs = [backend.run(feeds)["image"] for _ in range(3)]
    executes = [w for w, _ in fake_tensorrt.CALLS].count("execute_async_v3")
    assert executes == 2  # one normal run, one captured; then graph replays
    assert [w for w, _ in libcuda.CALLS] == [
        "cuStreamBeginCapture_v2",
        "cuStreamEndCapture",
        "cuGraphInstantiateWithFlags",
        "cuGraphLaunch",
        "cuGraphLaunch",
    ]
    assert ("cuStreamEndCapture", 1) in libcuda.CALLS  # the captured work is the engine's execution alone
    for out in outs:  # the fake engine is ONNX Runtime on the same feeds: equal bits; 1e-5 as above
        np.testing.assert_allclose(out, reference, atol=1e-5)


def test_a_failed_capture_is_ended_and_reported(exported, tmp_path, fake_tensorrt, monkeypatch):
    import libcuda

    plan = build(plan_build(exported["onestep-uncond"][0], tmp_path / "s.plan", BuildOptions(precision="fp32"))).plan
    backend = load_backend(plan, options=RunOptions(cuda_graph=True))
    monkeypatch.setattr(libcuda, "cuGraphInstantiateWithFlags", lambda *a: 999)
    feeds = {"z": np.zeros((4, 3, 8, 8), np.float32)}
    with pytest.raises(
        EdgeditError, match="CUDA graph: instantiate failed with CUresult 999; run without `cuda_graph`"
    ):
        backend.run(feeds)
    from pycuda import driver

    assert driver._STREAMS[backend.stream.handle]._capture is None  # the capture was ended


def test_a_dynamic_engine_gets_one_graph_per_batch_size(engine, fake_tensorrt):
    import libcuda

    backend = load_backend(engine, options=RunOptions(cuda_graph=True))  # batch 1..4
    for batch in (2, 3, 2, 3):
        backend.run(
            {
                "x": np.zeros((batch, 1, 16, 16), np.float32),
                "sigma": np.ones(batch, np.float32),
                "y": np.zeros(batch, np.int32),
            }
        )
    assert [w for w, _ in libcuda.CALLS].count("cuStreamEndCapture") == 2
    assert [w for w, _ in libcuda.CALLS].count("cuGraphLaunch") == 2


def _edit_sidecar(plan, **device):
    path = plan.with_name(plan.name + ".json")
    record = json.loads(path.read_text())
    record["device"].update(device)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tensorrt": "10.0.1"}, "built with TensorRT 10.0.1, this is TensorRT 10.3.0.30"),
        ({"gpu": "NVIDIA H100"}, "built on NVIDIA H100 .* this GPU is Orin \\(fake\\)"),
    ],
)
def test_foreign_engines_are_refused_before_deserialization(engine, fake_tensorrt, change, message):
    _edit_sidecar(engine, **change)
    with pytest.raises(EdgeditError, match=message):
        load_backend(engine)
    assert not [w for w, _ in fake_tensorrt.CALLS if w == "deserialize"]


def test_missing_sidecar_or_tensorrt(engine, fake_tensorrt, tmp_path):
    sidecar = engine.with_name(engine.name + ".json")
    sidecar.rename(tmp_path / "elsewhere.json")
    with pytest.raises(EdgeditError, match="its sidecar edm.plan.json is missing"):
        load_backend(engine)


def test_without_tensorrt_an_engine_cannot_run(exported, tmp_path, fake_tensorrt, monkeypatch):
    plan = build(plan_build(exported["onestep-uncond"][0], tmp_path / "s.plan", BuildOptions(precision="fp32"))).plan
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EdgeditError, match="TensorRT comes with JetPack"):
        load_backend(plan)


@pytest.mark.device
@pytest.mark.skipif(
    not has_real_tensorrt(), reason="needs TensorRT and a CUDA GPU (run jetson/selftest.sh on a Jetson)"
)
@pytest.mark.parametrize("precision, min_psnr", [("fp32", 60), ("fp16", 40), ("int8", 25)])
def test_real_engines_match_onnxruntime(exported, tmp_path, precision, min_psnr):
    """On real hardware: build each precision from the tiny exports and compare with ONNX Runtime (CPU)."""
    from edgedit.eval.metrics import psnr_db

    onnx = exported["onestep-cond"][0]
    if precision == "fp16":
        from edgedit.export.exporter import BatchSpec, export_onnx
        from edgedit.models.checkpoint import load_model

        net, _ = load_model(exported["onestep-cond"][1])
        onnx = export_onnx(net, tmp_path / "fp16.onnx", {"checkpoint": "tiny"}, BatchSpec.parse("1:2:4"), "fp16").path
    plan = build(
        plan_build(onnx, tmp_path / f"{precision}.plan", BuildOptions(precision=precision)), calib_samples=32
    ).plan
    seeds = list(range(8))
    got = generate(load_backend(plan), seeds, batch=4)
    want = generate(OnnxRuntimeBackend(exported["onestep-cond"][0], "cpu"), seeds, batch=4)
    assert psnr_db(want, got) > min_psnr


def test_info_describes_an_engine_from_its_sidecar(engine, fake_tensorrt):
    from typer.testing import CliRunner

    from edgedit.cli import app

    report = json.loads(CliRunner().invoke(app, ["info", str(engine), "--json"]).stdout)
    assert report["type"] == "engine" and report["precision"] == "fp16" and not report["strongly_typed"]
    assert report["device"]["gpu"] == "Orin (fake)" and report["onnx"]["file"] == "edm-cond.onnx"
    text = CliRunner().invoke(app, ["info", str(engine)]).stdout
    assert "TensorRT 10.3.0.30 on Orin (fake)" in text


HUGE_BATCH = json.dumps({"min": 1, "opt": 1, "max": 10**12})


def _replace_sidecar(plan, edit):
    path = plan.with_name(plan.name + ".json")
    record = json.loads(path.read_text())
    path.write_text(json.dumps(edit(record)))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: [r], "edm.plan.json: not a valid engine sidecar: expected a JSON object, got list"),
        (lambda r: {k: v for k, v in r.items() if k != "device"}, "field 'device': field required"),
        (lambda r: {k: v for k, v in r.items() if k != "builder"}, "field 'builder': field required"),
        (
            lambda r: {**r, "onnx": {k: v for k, v in r["onnx"].items() if k != "metadata"}},
            "field 'onnx.metadata': field required",
        ),
        (lambda r: {**r, "strongly_typed": 1}, "field 'strongly_typed': input should be a valid boolean"),
        (
            lambda r: {**r, "onnx": {**r["onnx"], "metadata": {**r["onnx"]["metadata"], "edgedit.batch": HUGE_BATCH}}},
            r"edm.plan \(its sidecar's ONNX metadata\): not a valid edgedit metadata: field 'batch.max'",
        ),
        (lambda r: {**r, "plan_bytes": r["plan_bytes"] + 1}, "edm.plan: not the engine its sidecar describes"),
        (lambda r: {**r, "plan_sha256": "0" * 64}, "edm.plan: not the engine its sidecar describes"),
    ],
)
def test_damaged_sidecars_are_refused_in_one_line_before_deserialization(engine, fake_tensorrt, edit, message):
    _replace_sidecar(engine, edit)
    with pytest.raises(EdgeditError, match=message) as err:
        load_backend(engine)
    assert "\n" not in str(err.value)
    assert not [w for w, _ in fake_tensorrt.CALLS if w == "deserialize"]


def test_a_truncated_engine_is_refused_before_deserialization(engine, fake_tensorrt):
    engine.write_bytes(engine.read_bytes()[:-1])
    with pytest.raises(EdgeditError, match="edm.plan: not the engine its sidecar describes"):
        load_backend(engine)
    assert not [w for w, _ in fake_tensorrt.CALLS if w == "deserialize"]
