import io
import shutil
import sys
import types

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgedit.contract.errors import CheckFailed, EdgeditError
from edgedit.contract.spec import ModelMeta
from edgedit.eval.metrics import psnr_db
from edgedit.export import graph
from edgedit.export.calibration import CALIBRATION_SEED, HELDOUT_SEED, check_calibration, record_inputs
from edgedit.export.quantize import QuantizeOptions, quantize_onnx
from edgedit.runtime.onnxruntime import OnnxRuntimeBackend
from edgedit.runtime.samplers import karras_sigmas, network_evaluations


@pytest.fixture(scope="module")
def quantized(exported, tmp_path_factory):
    """The one-step model quantized with default settings, and its calibration / held-out data."""
    source = exported["onestep-uncond"][0]
    backend = OnnxRuntimeBackend(source, "cpu")
    calib, heldout = record_inputs(backend, 32, CALIBRATION_SEED), record_inputs(backend, 8, HELDOUT_SEED)
    out = tmp_path_factory.mktemp("q") / "m.int8.onnx"
    report = quantize_onnx(source, out, calib, heldout, QuantizeOptions(min_psnr=20))
    return report, onnx.load(out), calib, heldout, source


def _q_params(model):
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [(n, init[n.input[1]], init[n.input[2]]) for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def test_zero_points_are_all_int8_zero(quantized):
    report, model, *_ = quantized
    params = _q_params(model)
    assert len(params) == report.zero_points > 0
    assert all(zp.dtype == np.int8 and not zp.any() for _, _, zp in params)


def test_weights_are_per_channel_and_activations_per_tensor(quantized):
    _, model, *_ = quantized
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weight_dq = [(n, s) for n, s, _ in _q_params(model) if n.op_type == "DequantizeLinear" and n.input[0] in init]
    activation_q = [s for n, s, _ in _q_params(model) if n.op_type == "QuantizeLinear"]
    assert weight_dq and activation_q
    for node, scale in weight_dq:
        weight = init[node.input[0]]
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[1],)  # MatMul (in, out): one per output
    assert all(s.ndim == 0 for s in activation_q)


def test_sensitive_layers_stay_in_high_precision(quantized):
    report, model, *_ = quantized
    produced_by = {o: n for n in model.graph.node for o in n.output}
    int8_inputs = {n.name for n in model.graph.node if n.op_type in ("MatMul", "Conv")
                   and any(produced_by.get(i) is not None and produced_by[i].op_type == "DequantizeLinear"
                           for i in n.input)}
    assert int8_inputs == set(report.quantized)
    assert all(n.startswith("blocks.") and n.split("/")[0].rsplit(".", 1)[1] in ("qkv", "proj", "fc1", "fc2")
               for n in report.quantized)
    assert {"x_embedder.proj/Conv", "final_layer.linear/MatMul"} <= set(report.excluded)
    assert not any(n.startswith("blocks.0.attn/MatMul") for n in int8_inputs)  # Q·Kᵀ and softmax·V


def test_the_recipe_quantizes_exactly_edgedits_int8_layers(quantized):
    """Node names come from the torch exporter's name scopes (graph.name_nodes_by_module reads a private
    metadata key of the dynamo exporter): if that key changes, this selection is the first to break."""
    from edgedit.contract.quantization import INT8_LAYERS
    from tests.helpers import TINY_CONFIGS

    report, *_ = quantized
    depth = TINY_CONFIGS["onestep-uncond"].depth
    assert sorted(report.quantized) == sorted(f"blocks.{i}.{layer}/MatMul"
                                              for i in range(depth) for layer in INT8_LAYERS)


def test_reported_psnr_is_measured_on_held_out_inputs(quantized):
    report, model, _, heldout, source = quantized
    ref = OnnxRuntimeBackend(source, "cpu").run({"z": heldout["z"][:4]})["image"]
    got = OnnxRuntimeBackend(report.path, "cpu").run({"z": heldout["z"][:4]})["image"]
    assert 20 < report.psnr_db < 90 and report.heldout_rows == 8
    assert psnr_db(ref, got) == pytest.approx(psnr_db(ref, got))  # deterministic
    assert abs(psnr_db(ref, got) - report.psnr_db) < 3  # the same quantity on half the rows
    meta = ModelMeta.from_metadata(graph.metadata(model), "int8")
    assert meta.precision == "int8" and meta.extra["quantization"]["psnr_db"] == pytest.approx(report.psnr_db)
    assert "parity" not in meta.extra


def test_psnr_below_threshold_is_refused_unless_forced(quantized, tmp_path):
    _, _, calib, heldout, source = quantized
    with pytest.raises(CheckFailed, match="below 200 dB"):
        quantize_onnx(source, tmp_path / "q.onnx", calib, heldout, QuantizeOptions(min_psnr=200))
    assert list(tmp_path.iterdir()) == []
    forced = quantize_onnx(source, tmp_path / "q.onnx", calib, heldout, QuantizeOptions(min_psnr=200, force=True))
    assert forced.path.exists() and forced.psnr_db < 200


def test_user_excludes_keep_more_in_high_precision(quantized, tmp_path):
    report, _, calib, heldout, source = quantized
    more = quantize_onnx(source, tmp_path / "q.onnx", calib, heldout,
                         QuantizeOptions(excludes=("blocks.0.*",), min_psnr=20))
    assert not any(n.startswith("blocks.0.") for n in more.quantized)
    assert len(more.quantized) == len(report.quantized) - 4
    with pytest.raises(EdgeditError, match="matches no node"):
        quantize_onnx(source, tmp_path / "r.onnx", calib, heldout, QuantizeOptions(excludes=("blocks.99.*",)))


def test_calibration_methods_give_different_ranges(quantized, tmp_path):
    _, model, calib, heldout, source = quantized
    pct = quantize_onnx(source, tmp_path / "p.onnx", calib, heldout, QuantizeOptions(method="percentile", min_psnr=20))
    scales = lambda m: sorted(float(s) for n, s, _ in _q_params(m) if n.op_type == "QuantizeLinear")  # noqa: E731
    assert scales(onnx.load(pct.path)) != scales(model)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("z"), "lacks input\\(s\\) z"),
    (lambda d: d.update(z=d["z"][:, :2]), "must be float32 of shape \\[rows, 3, 8, 8\\]"),
    (lambda d: d.update(z=d["z"].astype(np.float64)), "must be float32"),
    (lambda d: d["z"].__setitem__((0, 0, 0, 0), np.nan), "input 'z' holds 1 NaN or infinite values"),
    (lambda d: d["z"].__setitem__((1, 0, 0, 0), -np.inf), "input 'z' holds 1 NaN or infinite values"),
])
def test_bad_calibration_data_is_refused_in_one_line(quantized, mutate, message):
    *_, calib, _, source = quantized
    data = {k: v.copy() for k, v in calib.items()}
    mutate(data)
    meta = OnnxRuntimeBackend(source, "cpu").meta
    with pytest.raises(EdgeditError, match=message) as err:
        check_calibration(data, meta, "calib.npz")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("labels, message", [([0, -1], r"labels 'y' must be 0..9 \(got -1..0\)"),
                                             ([3, 10], r"labels 'y' must be 0..9 \(got 3..10\)")])
def test_labels_outside_the_classes_are_refused(exported, tmp_path, labels, message):
    from edgedit.contract.fileio import save_npz
    from edgedit.export.calibration import load_calibration

    meta = OnnxRuntimeBackend(exported["onestep-cond"][0], "cpu").meta
    z = np.zeros((2, 1, 16, 16), np.float32)
    save_npz(tmp_path / "c.npz", {"z": z, "y": np.array(labels)})
    with pytest.raises(EdgeditError, match="c.npz: " + message):
        load_calibration(tmp_path / "c.npz", meta)


def test_a_zip_bomb_is_refused_before_it_is_inflated(exported, tmp_path):
    """A small .npz whose arrays declare more than calibration may use: refused from the headers."""
    import zipfile

    from numpy.lib import format as npy

    from edgedit.export import calibration

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (72 * 2**22, 1, 1, 1)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("z.npy", "w", force_zip64=True) as f:
        f.write(header.getvalue())
        for _ in range(72):
            f.write(bytes(2**24))
    assert (tmp_path / "bomb.npz").stat().st_size < 4 * 2**20
    meta = OnnxRuntimeBackend(exported["onestep-uncond"][0], "cpu").meta
    with pytest.raises(EdgeditError, match=r"bomb.npz: unpacks to 1152 MB, more than the 1024 MB"):
        calibration.load_calibration(tmp_path / "bomb.npz", meta)


def test_only_fp32_edgedit_exports_are_quantized(quantized, tmp_path):
    report, *_ , calib, heldout, source = quantized
    with pytest.raises(EdgeditError, match="is a int8 model; quantize an FP32 export"):
        quantize_onnx(report.path, tmp_path / "x.onnx", calib, heldout)
    foreign = onnx.load(source)
    del foreign.metadata_props[:]
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(EdgeditError, match="no edgedit metadata"):
        quantize_onnx(tmp_path / "foreign.onnx", tmp_path / "y.onnx", calib, heldout)


def test_denoiser_calibration_covers_every_step_of_real_trajectories(exported):
    backend = OnnxRuntimeBackend(exported["edm-cond"][0], "cpu")
    data = record_inputs(backend, 3, CALIBRATION_SEED, steps=5, sampler="heun")
    assert data["x"].shape[0] == 3 * network_evaluations(5, "heun")
    schedule = karras_sigmas(5, 0.002, 80.0, 7.0)[:-1].astype(np.float32)
    assert set(np.unique(data["sigma"])) == set(schedule)  # every noise level met, nothing else
    assert data["x"][data["sigma"] == schedule[0]].std() > 40  # x at sigma_max is ~80 x noise
    assert set(np.unique(data["y"])) <= set(range(10))


def test_calibration_beyond_what_a_calibration_file_may_hold_is_refused_first(exported):
    """1 GiB is the reader's bound (MAX_CALIBRATION_BYTES): calib-data never writes a file that
    quantize would refuse. An EDM denoiser's rows are x, sigma and y at each of 2*18-1 calls."""
    backend = OnnxRuntimeBackend(exported["edm-cond"][0], "cpu")
    row = 4 * 16 * 16 + 4 + 4
    fits = (1 << 30) // (35 * row)
    with pytest.raises(EdgeditError, match=rf"{fits + 1:,} samples x 35 network calls .* ask for fewer \(-n\)"):
        record_inputs(backend, fits + 1, CALIBRATION_SEED)


def test_modelopt_is_used_when_installed(quantized, tmp_path, monkeypatch):
    """Orchestration only: a stand-in for modelopt.onnx.quantization.quantize records the call and
    writes a Q/DQ model (ModelOpt itself lives in a separate environment; see README)."""
    report, _, calib, heldout, source = quantized
    calls = {}

    def fake_quantize(**kwargs):
        calls.update(kwargs)
        shutil.copy(report.path, kwargs["output_path"])

    package = types.ModuleType("modelopt")
    package.__path__ = []
    onnx_pkg = types.ModuleType("modelopt.onnx")
    onnx_pkg.__path__ = []
    quantization = types.ModuleType("modelopt.onnx.quantization")
    quantization.quantize = fake_quantize
    for name, module in (("modelopt", package), ("modelopt.onnx", onnx_pkg),
                         ("modelopt.onnx.quantization", quantization)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == "modelopt" else None)

    result = quantize_onnx(source, tmp_path / "mo.onnx", calib, heldout, QuantizeOptions(method="entropy", min_psnr=20))
    assert result.tool == "modelopt"
    assert calls["quantize_mode"] == "int8" and calls["calibration_method"] == "entropy"
    assert calls["calibration_data"]["z"].shape == calib["z"].shape
    assert calls["nodes_to_quantize"] == [f"^{n.replace('.', '[.]')}$".replace("[.]", "\\.") for n in result.quantized]
    with pytest.raises(EdgeditError, match="not percentile"):
        quantize_onnx(source, tmp_path / "mo2.onnx", calib, heldout, QuantizeOptions(method="percentile"))
