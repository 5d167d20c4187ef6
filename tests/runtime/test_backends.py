import json

import numpy as np
import onnx
import pytest

from edgedit.contract.errors import EdgeditError
from edgedit.contract.spec import ModelMeta
from edgedit.eval.metrics import psnr_db
from edgedit.export.calib_data import CALIBRATION_SEED, HELDOUT_SEED, record_inputs
from edgedit.export.exporter import BatchSpec, export_onnx
from edgedit.export.quantize import QuantizeOptions, quantize_onnx
from edgedit.models.torch_backend import TorchBackend
from edgedit.runtime.backends import load_backend
from edgedit.runtime.null import NullBackend
from edgedit.runtime.onnxruntime import OnnxRuntimeBackend, ort_providers
from edgedit.runtime.samplers import generate


def test_backends_dispatch_on_the_model_argument(exported):
    onnx_path, checkpoint = exported["onestep-cond"]
    assert isinstance(load_backend(onnx_path), OnnxRuntimeBackend)
    assert isinstance(load_backend(checkpoint), TorchBackend)
    with pytest.raises(EdgeditError, match="the torch backend runs .safetensors, preset names"):
        load_backend(onnx_path, backend="torch")


def test_inputs_are_checked_against_the_spec(exported):
    backend = OnnxRuntimeBackend(exported["onestep-cond"][0], "cpu")
    good = {"z": np.zeros((2, 1, 16, 16), np.float32), "y": np.zeros(2, np.int32)}
    assert backend.run(good)["image"].shape == (2, 1, 16, 16)
    with pytest.raises(EdgeditError, match="missing \\['y'\\]"):
        backend.run({"z": good["z"]})
    with pytest.raises(EdgeditError, match="input 'y' must be int32"):
        backend.run({**good, "y": np.zeros(2, np.int64)})


def test_foreign_and_non_onnx_files_are_refused(exported, tmp_path):
    foreign = onnx.load(exported["onestep-cond"][0])
    del foreign.metadata_props[:]
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(EdgeditError, match="no edgedit metadata"):
        OnnxRuntimeBackend(tmp_path / "foreign.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(EdgeditError, match="junk.onnx: not a readable ONNX model"):
        OnnxRuntimeBackend(tmp_path / "junk.onnx")


def test_damaged_metadata_names_what_is_missing():
    with pytest.raises(EdgeditError, match="missing edgedit.sampler, edgedit.batch"):
        ModelMeta.from_metadata(
            {
                "edgedit.format": "edgedit.onnx/1",
                "edgedit.version": "0",
                "edgedit.config": "{}",
                "edgedit.inputs": "[]",
                "edgedit.outputs": "[]",
                "edgedit.precision": "fp32",
                "edgedit.source": "{}",
            },
            "m.onnx",
        )


def test_provider_choice():
    assert ort_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert ort_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    with pytest.raises(EdgeditError, match="no CUDAExecutionProvider"):
        ort_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(EdgeditError, match="unknown provider"):
        ort_providers("rocm", ["CPUExecutionProvider"])


@pytest.mark.parametrize("name, steps", [("onestep-cond", None), ("edm-cond", 8)])
def test_same_seed_same_image_through_torch_onnx_fp32_fp16_and_int8(exported, tmp_path, name, steps):
    onnx_path, checkpoint = exported[name]
    from edgedit.models.checkpoint import load_model

    net, _ = load_model(checkpoint)
    fp16 = export_onnx(
        net, tmp_path / "fp16.onnx", {"checkpoint": checkpoint.name}, BatchSpec.parse("1:2:4"), precision="fp16"
    ).path
    fp32 = OnnxRuntimeBackend(onnx_path, "cpu")
    calib, heldout = record_inputs(fp32, 16, CALIBRATION_SEED, steps), record_inputs(fp32, 4, HELDOUT_SEED, steps)
    int8 = quantize_onnx(onnx_path, tmp_path / "int8.onnx", calib, heldout, QuantizeOptions(min_psnr=20)).path

    seeds = [3, 1, 4, 1, 5]
    images = {
        label: generate(load_backend(path), seeds, batch=4, steps=steps)
        for label, path in (("torch", checkpoint), ("fp32", onnx_path), ("fp16", fp16), ("int8", int8))
    }
    reference = images["torch"]
    assert reference.std() > 0.1
    # Seed 1 twice, in different slots of one batch: a kernel may round two rows differently (vector body or
    # tail, thread split). float32 through up to 15 network calls: batch compositions move torch's images
    # <= 1e-6 (|image| < 5); 1e-5 leaves 10x and still tells seed 1 from any other seed (differences ~1).
    np.testing.assert_allclose(images["fp32"][1], images["fp32"][3], rtol=0, atol=1e-5)
    # 80 dB: an RMS error below 1e-4 of the image range, against ~1e-6 between torch and ONNX Runtime (float32).
    assert psnr_db(reference, images["fp32"]) > 80
    assert psnr_db(reference, images["fp16"]) > 45
    assert psnr_db(reference, images["int8"]) > 25


def test_a_file_keeps_the_noise_scheme_it_was_made_with(exported, tmp_path):
    """New exports record pcg64-keyed noise; a file that records no scheme (edgedit 0.1's) keeps
    sampling with PCG64, so its seeds keep their images."""
    path = exported["onestep-cond"][0]
    new = OnnxRuntimeBackend(path, "cpu")
    assert new.meta.sampler.noise == "pcg64-keyed"
    model = onnx.load(path)
    sampler = new.meta.sampler.model_dump(exclude={"noise"})
    onnx.helper.set_model_props(
        model, {**{p.key: p.value for p in model.metadata_props}, "edgedit.sampler": json.dumps(sampler)}
    )
    onnx.save(model, tmp_path / "old.onnx")
    old = OnnxRuntimeBackend(tmp_path / "old.onnx", "cpu")
    assert old.meta.sampler.noise == "pcg64"
    seeds = [0, 1, 2]
    # The same graph in ONNX Runtime, the same batches and noise, on this machine: equal bits.
    np.testing.assert_array_equal(generate(old, seeds, batch=2), generate(new, seeds, batch=2, noise="pcg64"))
    assert not np.allclose(generate(old, seeds, batch=2), generate(new, seeds, batch=2))  # other noise: ~1 apart


def test_the_null_backend_answers_with_the_contract_and_computes_nothing(exported):
    """It reads only the header (no ONNX Runtime session), checks feeds like every backend, answers
    with preallocated outputs, and `auto` never picks it."""
    onnx_path = exported["onestep-cond"][0]
    null = load_backend(onnx_path, backend="null")
    assert isinstance(null, NullBackend) and not isinstance(load_backend(onnx_path), NullBackend)
    feeds = {"z": np.ones((2, 1, 16, 16), np.float32), "y": np.zeros(2, np.int32)}
    first, again = null.run(feeds)["image"], null.run(feeds)["image"]
    assert first.shape == (2, 1, 16, 16) and first.dtype == np.float32 and not first.any() and first is again
    with pytest.raises(EdgeditError, match="input 'y' must be int32"):
        null.run({**feeds, "y": np.zeros(2, np.int64)})
    images = generate(null, range(5), batch=4)
    assert images.shape == (5, 1, 16, 16) and not images.any()
    with pytest.raises(EdgeditError, match="the null backend runs .onnx, .plan"):
        load_backend(exported["onestep-cond"][1], backend="null")
