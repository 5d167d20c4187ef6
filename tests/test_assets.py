import numpy as np

from edgedit.assets import STUDENT_DIGITS, TEACHER_DIGITS
from edgedit.contract.config import get_preset
from edgedit.eval.digits_classifier import embed
from edgedit.export.exporter import BatchSpec, export_onnx
from edgedit.models.checkpoint import load_model, read_checkpoint
from edgedit.runtime.backends import load_backend
from edgedit.runtime.samplers import default_labels, generate


def test_the_shipped_digits_teacher_is_the_documented_model():
    info = read_checkpoint(TEACHER_DIGITS)  # validates every tensor against the config
    assert info.config == get_preset("DiT-Teacher-Digits/2").config
    assert info.num_params == 5_507_908 and {dtype for dtype, _ in info.tensors.values()} == {"F16"}
    assert info.provenance["steps"] == 1800 and info.provenance["data"] == "digits"
    assert info.provenance["eval_18_step_heun_1000_samples"]["FID"] > 0


def test_the_shipped_digits_student_is_a_small_one_step_model_of_that_teacher(tmp_path):
    teacher, student = read_checkpoint(TEACHER_DIGITS), read_checkpoint(STUDENT_DIGITS)
    assert student.config.diffusion == "one-step" and student.num_params <= 0.1 * teacher.num_params
    assert ((student.config.input_size, student.config.in_channels)
            == (teacher.config.input_size, teacher.config.in_channels))
    # distilled from pairs of this teacher (its tensors: the file was re-saved since, with a content hash)
    assert student.provenance["teacher"]["tensors_sha256"] == teacher.metadata["edgedit.tensors_sha256"]
    assert student.provenance["eval"]["FID"] > 0 and student.provenance["sweep"]["params"] == student.num_params


def test_the_shipped_student_makes_the_digits_it_is_asked_for_in_torch_and_onnx_alike(tmp_path):
    torch_backend = load_backend(STUDENT_DIGITS)
    net, _ = load_model(STUDENT_DIGITS)
    onnx = export_onnx(net, tmp_path / "student.onnx", {"checkpoint": STUDENT_DIGITS.name}, BatchSpec.static(10)).path
    seeds = list(range(100))
    images = generate(torch_backend, seeds, batch=10)
    exported = generate(load_backend(onnx), seeds, batch=10)
    assert np.abs(images - exported).max() < 1e-4  # the same images through ONNX Runtime
    _, probs = embed(images)
    agreement = float((probs.argmax(1) == default_labels(seeds, 10)).mean())
    # The classifier reads the asked-for digit about as often as the sweep measured on 1000 samples.
    assert agreement >= read_checkpoint(STUDENT_DIGITS).provenance["eval"]["label agreement"] - 0.15
