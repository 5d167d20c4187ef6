import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from edgedit.contract.errors import CheckFailed, EdgeditError
from edgedit.contract.spec import ModelMeta
from edgedit.export import exporter, graph
from edgedit.export.exporter import BatchSpec, export_onnx
from edgedit.models.deployable import DeployableDiT, example_inputs
from edgedit.models.dit import DiT
from edgedit.models.loading import random_weights
from edgedit.runtime.onnxruntime import OnnxRuntimeBackend
from tests.helpers import TINY_CONFIGS

SOURCE = {"preset": "tiny", "weights": "random"}


def tiny(name, seed=0):
    return random_weights(DiT(TINY_CONFIGS[name]), seed=seed).eval()


@pytest.mark.parametrize(
    "name, inputs, output",
    [
        ("onestep-uncond", ["z"], "image"),
        ("onestep-cond", ["z", "y"], "image"),
        ("edm-uncond", ["x", "sigma"], "denoised"),
        ("edm-cond", ["x", "sigma", "y"], "denoised"),
        ("ddpm-cfg", ["x", "t", "y"], "out"),
    ],
)
def test_export_is_tensorrt_shaped_self_describing_and_matches_torch(tmp_path, name, inputs, output):
    net = tiny(name)
    report = export_onnx(net, tmp_path / "m.onnx", SOURCE, BatchSpec.static(2))
    model = onnx.load(report.path)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == inputs and [o.name for o in model.graph.output] == [output]
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    assert "Attention" not in report.ops
    assert report.ops["LayerNormalization"] == 2 * net.config.depth + 1
    assert graph.default_opset(model) == 18
    # constants folded: no node computes from initializers alone
    constants = {t.name for t in model.graph.initializer}
    assert not [n.name for n in model.graph.node if n.input and all(i in constants for i in n.input if i)]
    meta = ModelMeta.from_metadata(graph.metadata(model), "m.onnx")
    assert meta.config == net.config and meta.source == SOURCE and meta.precision == "fp32"
    assert meta.sampler.type == net.config.diffusion
    (check,) = meta.extra["parity"]
    # max |ONNX - torch| / max |torch|, float32 through <= 3 blocks: <= 3.5e-7 measured (3 eps); 1e-4 is the
    # exporter's own fp32 bound
    assert check["batch"] == 2 and check["max_rel_error"] < 1e-4


def test_nodes_are_named_after_modules(exported):
    model = onnx.load(exported["edm-cond"][0])
    names = {n.name for n in model.graph.node}
    assert {
        "blocks.0.attn.qkv/MatMul",
        "blocks.1.mlp.fc2/MatMul",
        "x_embedder.proj/Conv",
        "final_layer.linear/MatMul",
    } <= names
    assert any(n.startswith("blocks.0.adaLN_modulation.1/") for n in names)


def test_edm_preconditioning_is_inside_the_graph(exported):
    """The ONNX denoiser computes D(x; sigma) = c_skip x + c_out F(c_in x; ln(sigma)/4), as torch does."""
    onnx_path, checkpoint = exported["edm-cond"]
    from edgedit.models.checkpoint import load_model
    from edgedit.models.edm import edm_denoise

    net, _ = load_model(checkpoint)
    backend = OnnxRuntimeBackend(onnx_path, "cpu")
    x, sigma, y = example_inputs(net, 3, seed=9)
    sd = 0.5
    s = sigma.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        by_hand = sd**2 / (s**2 + sd**2) * x + s * sd / (s**2 + sd**2).sqrt() * net(
            x / (s**2 + sd**2).sqrt(), sigma.log() / 4, y.long()
        )
        wrapped = edm_denoise(net, x, sigma, y.long())
    got = backend.run({"x": x.numpy(), "sigma": sigma.numpy(), "y": y.numpy()})["denoised"]
    # float32, the network on inputs one rounding apart (x * c_in against x / sqrt(.)): 3.6e-7 measured on
    # |D| < 1.6, on every kernel path; atol 1e-5 + rtol 1.3e-6 (assert_close's float32 default) leaves 25x.
    torch.testing.assert_close(wrapped, by_hand, atol=1e-5, rtol=1.3e-6)
    # ONNX Runtime against torch: 7e-7 measured; 1e-4 is the exporter's fp32 parity bound (~150x).
    np.testing.assert_allclose(got, by_hand.numpy(), atol=1e-4, rtol=1e-4)


def test_dynamic_batch_runs_at_min_and_max_and_refuses_outside(exported):
    backend = OnnxRuntimeBackend(exported["onestep-cond"][0], "cpu")
    assert backend.meta.batch == {"min": 1, "opt": 2, "max": 4}
    assert [c["batch"] for c in backend.meta.extra["parity"]] == [1, 4]
    for batch in (1, 3, 4):
        out = backend.run({"z": np.zeros((batch, 1, 16, 16), np.float32), "y": np.zeros(batch, np.int32)})
        assert out["image"].shape == (batch, 1, 16, 16)
    with pytest.raises(EdgeditError, match="batch 5 is outside this model's batch range 1..4"):
        backend.run({"z": np.zeros((5, 1, 16, 16), np.float32), "y": np.zeros(5, np.int32)})


def _elem_types(model):
    types = {
        v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]
    }
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def test_fp16_graph_is_fp16_typed_and_fp32_only_where_measured_necessary(tmp_path, monkeypatch):
    """LayerNorm and softmax run FP16 when their activations are small and FP16 costs no accuracy (the
    measurement `edgedit quantize` makes too), FP32 when not; I/O stays FP32; the plan is recorded."""
    from edgedit.contract.spec import ModelMeta
    from edgedit.export import graph, precision

    net = tiny("edm-cond")
    by_op = lambda model, op: [n for n in model.graph.node if n.op_type == op]  # noqa: E731
    report = export_onnx(net, tmp_path / "m.fp16.onnx", SOURCE, BatchSpec.static(2), precision="fp16")
    model = onnx.load(report.path)
    types = _elem_types(model)
    assert all(
        types[n.input[1]] == TensorProto.FLOAT16
        for n in by_op(model, "MatMul")
        if n.input[1] in {t.name for t in model.graph.initializer}
    )
    plan = ModelMeta.from_metadata(graph.metadata(model), "m.fp16.onnx").precision_plan
    assert plan.int8 == () and plan.high == "fp16" and "layernorm" not in plan.kept_fp32
    assert all(types[n.input[0]] == TensorProto.FLOAT16 for n in by_op(model, "LayerNormalization"))
    assert all(i.type.tensor_type.elem_type != TensorProto.FLOAT16 for i in model.graph.input)
    check = report.parity[0]
    assert 0 < check["max_rel_error"] < exporter.PARITY_TOLERANCE["fp16"]
    # activations beyond the FP16 bound keep their classes FP32, with Casts around them
    monkeypatch.setattr(precision, "FP16_DATA_MAX", 1e-3)
    kept = onnx.load(export_onnx(net, tmp_path / "k.fp16.onnx", SOURCE, BatchSpec.static(2), precision="fp16").path)
    types = _elem_types(kept)
    assert all(
        types[n.input[0]] == TensorProto.FLOAT for op in ("LayerNormalization", "Softmax") for n in by_op(kept, op)
    )
    assert {"layernorm", "softmax"} <= set(ModelMeta.from_metadata(graph.metadata(kept), "k").precision_plan.fp32)


def test_failed_parity_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(exporter.PARITY_TOLERANCE, "fp32", 0.0)
    with pytest.raises(CheckFailed, match="export parity failed at batch 1"):
        export_onnx(tiny("onestep-uncond"), tmp_path / "m.onnx", SOURCE, BatchSpec.static(1))
    assert list(tmp_path.iterdir()) == []


def test_large_models_keep_weights_in_external_data(tmp_path):
    report = export_onnx(
        tiny("onestep-uncond"), tmp_path / "m.onnx", SOURCE, BatchSpec.static(1), external_data_bytes=0
    )
    assert report.data_path == tmp_path / "m.onnx.data" and report.data_path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    backend = OnnxRuntimeBackend(report.path, "cpu")
    assert backend.run({"z": np.ones((1, 3, 8, 8), np.float32)})["image"].shape == (1, 3, 8, 8)


@pytest.mark.parametrize("opset", [16, 21])
def test_opsets_tensorrt_cannot_parse_are_refused(tmp_path, opset):
    with pytest.raises(EdgeditError, match="TensorRT 10.3"):
        export_onnx(tiny("onestep-uncond"), tmp_path / "m.onnx", SOURCE, BatchSpec.static(1), opset=opset)


def test_opset_20_exports(tmp_path):
    report = export_onnx(tiny("onestep-uncond"), tmp_path / "m.onnx", SOURCE, BatchSpec.static(1), opset=20)
    assert graph.default_opset(onnx.load(report.path)) == 20


@pytest.mark.parametrize(
    "text, message", [("1:4", "MIN:OPT:MAX"), ("4:2:8", "MIN <= OPT <= MAX"), ("2:2:2", "MIN < MAX")]
)
def test_bad_dynamic_batch_specs(text, message):
    with pytest.raises(EdgeditError, match=message):
        BatchSpec.parse(text)


def test_deployable_module_is_what_the_torch_backend_runs():
    net = tiny("onestep-cond")
    module = DeployableDiT(net)
    z, y = example_inputs(net, 2)
    with torch.no_grad():  # the very same modules on the same inputs: equal bits
        assert torch.equal(module(z, y), net(z, y=y.long()))
